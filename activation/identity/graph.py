"""The identity graph: links in, identifier -> profile mapping, merge ledger and conflicts out.

Pure and deterministic. Links are applied in a canonical order (timestamp, message id, source,
identifiers), never arrival order, so the same set of links always yields the same profiles.
Each link joins its highest-priority identifier (the anchor) to each of its other identifiers; a
join that would break a rule (type limit, profile size, an unmerge split) is refused and recorded
as a conflict with its evidence. A profile's id derives from its canonical identifier.

An `alias` is an explicit instruction (Segment's semantics: "this previousId and this userId are
the same person"), so its joins are not held to the per-type limits: an alias from an old userId
to a new one merges the two even though `user_id` allows one per profile. Unmerge splits and
`max_profile_identifiers` still refuse it, and the rule `alias_overrides_limits: false` puts
aliases back under the limits like any other link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from activation.identity.identifiers import ALIAS_TYPE, GROUP_TYPE, Identifier, profile_id_for
from activation.identity.rules import Rules


@dataclass(frozen=True)
class Link:
    """Identifiers seen together, with the evidence: the earliest event (or import) carrying them."""

    ids: tuple[Identifier, ...]
    timestamp: datetime
    message_id: str
    source_id: str
    kind: str

    def order(self) -> tuple[datetime, str, str, tuple[Identifier, ...]]:
        return (self.timestamp, self.message_id, self.source_id, self.ids)


@dataclass(frozen=True)
class Split:
    """An unmerge: identifiers on different sides never share a profile again."""

    split_id: str
    sides: Mapping[Identifier, int]


@dataclass(frozen=True)
class Evidence:
    a: Identifier
    b: Identifier
    rule: str
    message_id: str
    source_id: str
    timestamp: datetime
    kind: str

    def digest(self) -> str:
        text = "\x1f".join((self.message_id, self.source_id, self.a.label(), self.b.label()))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Merge:
    profile_id: str
    merged: tuple[str, str]
    evidence: Evidence


@dataclass(frozen=True)
class Conflict:
    profile_id: str
    other_profile_id: str
    evidence: Evidence
    detail: str


@dataclass
class Stitched:
    mapping: dict[Identifier, str] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass
class _Component:
    best: Identifier
    counts: dict[str, int]
    size: int = 1
    sides: dict[str, int] = field(default_factory=dict)


class _Forest:
    def __init__(self, rules: Rules, splits: Iterable[Split]) -> None:
        self.rules = rules
        self.parent: dict[Identifier, Identifier] = {}
        self.comp: dict[Identifier, _Component] = {}
        self.memberships: dict[Identifier, dict[str, int]] = {}
        for split in splits:
            for identifier, side in split.sides.items():
                self.memberships.setdefault(identifier, {})[split.split_id] = side

    def add(self, node: Identifier) -> None:
        if node not in self.parent:
            self.parent[node] = node
            sides = dict(self.memberships.get(node, {}))
            self.comp[node] = _Component(best=node, counts={node.type: 1}, sides=sides)

    def find(self, node: Identifier) -> Identifier:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def violation(self, a: _Component, b: _Component, explicit: bool = False) -> str:
        """The rule a join of `a` and `b` breaks ('' for none); explicit joins skip the type limits."""
        for type_, count in b.counts.items():
            limit = 0 if explicit else self.rules.limit(type_)
            if limit and a.counts.get(type_, 0) + count > limit:
                return f"limit:{type_}"
        if a.size + b.size > self.rules.max_profile_identifiers:
            return "max_profile_identifiers"
        for split_id, side in b.sides.items():
            if a.sides.get(split_id, side) != side:
                return f"split:{split_id}"
        return ""

    def union(self, ra: Identifier, rb: Identifier) -> None:
        a, b = self.comp[ra], self.comp[rb]
        if (a.size, self.rules.key(rb)) < (b.size, self.rules.key(ra)):
            ra, rb, a, b = rb, ra, b, a
        self.parent[rb] = ra
        for type_, count in b.counts.items():
            a.counts[type_] = a.counts.get(type_, 0) + count
        a.size += b.size
        a.sides.update(b.sides)
        if self.rules.key(b.best) < self.rules.key(a.best):
            a.best = b.best
        del self.comp[rb]


def stitch(links: Iterable[Link], rules: Rules, splits: Iterable[Split] = ()) -> Stitched:
    """Compute profiles from links; the result depends only on the set of links, rules and splits."""
    ordered = sorted(links, key=Link.order)
    nodes = {i for link in ordered for i in link.ids if i.type != ALIAS_TYPE}
    forest = _Forest(rules, splits)
    pending: list[tuple[Merge | Conflict, Identifier, Identifier]] = []
    blocked: dict[Identifier, bool] = {}
    for link in ordered:
        ids = _usable(link.ids, nodes, rules, blocked)
        for node in ids:
            forest.add(node)
        people = [i for i in ids if i.type != GROUP_TYPE]
        for other in people[1:]:
            outcome = _join(forest, link, people[0], other)
            if outcome is not None:
                pending.append((outcome, people[0], other))
    return _finish(forest, pending)


def _usable(
    ids: Iterable[Identifier], nodes: set[Identifier], rules: Rules, blocked: dict[Identifier, bool]
) -> list[Identifier]:
    """Resolve alias previous ids, drop blocked values, dedupe, sort by priority."""
    usable = []
    for i in {_resolve_alias(i, nodes) for i in ids}:
        is_blocked = blocked.get(i)
        if is_blocked is None:
            is_blocked = blocked[i] = rules.is_blocked(i)
        if not is_blocked:
            usable.append(i)
    return sorted(usable, key=rules.key)


def _resolve_alias(identifier: Identifier, nodes: set[Identifier]) -> Identifier:
    """An alias's previousId is a known user id if one exists with that value, else an anonymous id."""
    if identifier.type != ALIAS_TYPE:
        return identifier
    as_user = Identifier("user_id", identifier.value)
    return as_user if as_user in nodes else Identifier("anonymous_id", identifier.value)


def _join(forest: _Forest, link: Link, anchor: Identifier, other: Identifier) -> Merge | Conflict | None:
    ra, rb = forest.find(anchor), forest.find(other)
    if ra == rb:
        return None
    a, b = forest.comp[ra], forest.comp[rb]
    rule = forest.violation(a, b, explicit=link.kind == "alias" and forest.rules.alias_overrides_limits)
    evidence = Evidence(
        anchor, other, rule or link.kind, link.message_id, link.source_id, link.timestamp, link.kind
    )
    if rule:
        detail = f"{anchor.label()} and {other.label()} not merged: {rule}"
        return Conflict("", "", evidence, detail)
    merged = (profile_id_for(a.best), profile_id_for(b.best))
    forest.union(ra, rb)
    return Merge("", merged, evidence)


def _finish(forest: _Forest, pending: list[tuple[Merge | Conflict, Identifier, Identifier]]) -> Stitched:
    by_root: dict[Identifier, str] = {}
    mapping = {}
    for node in sorted(forest.parent):
        root = forest.find(node)
        profile = by_root.get(root)
        if profile is None:
            profile = by_root[root] = profile_id_for(forest.comp[root].best)
        mapping[node] = profile
    result = Stitched(mapping=mapping)
    for outcome, anchor, other in pending:
        profile = result.mapping[anchor]
        if isinstance(outcome, Merge):
            result.merges.append(Merge(profile, outcome.merged, outcome.evidence))
        else:
            result.conflicts.append(
                Conflict(profile, result.mapping[other], outcome.evidence, outcome.detail)
            )
    return result
