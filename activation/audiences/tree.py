"""The audience definition tree: immutable nodes shared by the JSON form, the text form and the compiler.

A definition is a boolean combination (`And`, `Or`, `Not`) of conditions on one profile:
its traits, its events (track events, page views, screen views; filtered by properties and by the
collector's enrichment), its computed traits (built-in or user-defined), or its membership of
another audience.
Nodes are frozen dataclasses holding tuples, so two trees compare equal when they mean the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...]

COMPARISONS: Final = ("=", "!=", "<", ">", "<=", ">=")
TRAIT_OPS: Final = (*COMPARISONS, "contains", "exists", "in")
COUNT_OPS: Final = COMPARISONS
EVENT_KINDS: Final = ("event", "page", "screen")  # track events by `event`; page and screen views by `name`
# Allow-list of enrichment columns an event filter may test (plain strings; '' when unknown).
ENRICHMENT: Final = {
    "geo_country": "geo_country",
    "geo_city": "geo_city",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "referrer_medium": "referrer_medium",
    "device_type": "if(device_type != '', device_type, ua_device_type)",
}
ENRICHMENT_OPS: Final = ("=", "!=", "contains", "exists", "in")
# Allow-list of built-in computed traits: the name a definition uses -> (column of `profiles`, kind).
COMPUTED: Final = {
    "first_seen": ("first_seen", "time"),
    "last_seen": ("last_seen", "time"),
    "event_count": ("event_count", "number"),
    "session_count": ("session_count", "number"),
    "lifetime_revenue": ("lifetime_revenue", "number"),
}


@dataclass(frozen=True)
class Compare:
    """`op value` applied to a JSON value (a trait or an event property)."""

    op: str
    value: Value | None = None


@dataclass(frozen=True)
class Trait:
    name: str
    test: Compare


@dataclass(frozen=True)
class Property:
    path: str
    test: Compare


@dataclass(frozen=True)
class Enrichment:
    """A test on one allow-listed enrichment column of the event (`ENRICHMENT`)."""

    field: str
    test: Compare


Filter = Property | Enrichment


@dataclass(frozen=True)
class Count:
    op: str = ">="
    value: int = 1


@dataclass(frozen=True)
class Event:
    """Profiles whose events named `name` (matching every filter, in the window) number `count`.

    `kind` is "event" (track events by event name), "page" or "screen" (views by page/screen name)."""

    name: str
    where: tuple[Filter, ...] = ()
    within_days: int | None = None
    between: tuple[str, str] | None = None
    count: Count = Count()
    kind: str = "event"


@dataclass(frozen=True)
class Computed:
    """A computed trait: a built-in column of `profiles` (`COMPUTED`) or, for any other name, a
    user-defined computed trait (identity's `profile_computed_traits`; no value counts as 0)."""

    name: str
    op: str
    value: int | float | str


@dataclass(frozen=True)
class Member:
    """Membership of the audience with this key, as of its latest computation."""

    audience: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Leaf = Trait | Event | Computed | Member
Node = And | Or | Not | Leaf


def leaves(node: Node, path: str = "$") -> list[tuple[str, Leaf]]:
    """Every condition of the tree with its JSON path, in document order."""
    if isinstance(node, And | Or):
        key = "and" if isinstance(node, And) else "or"
        return [pair for i, item in enumerate(node.items) for pair in leaves(item, f"{path}.{key}[{i}]")]
    if isinstance(node, Not):
        return leaves(node.item, f"{path}.not")
    return [(path, node)]


def referenced_audiences(node: Node) -> set[str]:
    """Keys of the audiences this definition depends on directly."""
    return {leaf.audience for _, leaf in leaves(node) if isinstance(leaf, Member)}
