"""References out of a definition: every audience it names must exist and references never loop;
every user-defined computed trait it names must be defined (identity's computed traits)."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from activation.audiences.tree import COMPUTED, Computed, Member, Node, leaves, referenced_audiences
from activation.identity.store import read_definitions

Lookup = Callable[[str], Node | None]


def live_lookup(definitions: dict[str, Node], key: str, node: Node | None) -> Lookup:
    """Definitions by key, with `key` itself given the definition `node` (the one being saved)."""
    by_key = dict(definitions)
    if node is not None:
        by_key[key] = node
    return by_key.get


def check_references(key: str, node: Node, lookup: Lookup) -> dict[str, str]:
    """Errors by JSON path: unknown audiences, and references leading back to `key`.

    `lookup(key)` returns the definition of a live audience, or None."""
    errors: dict[str, str] = {}
    for path, leaf in leaves(node):
        if not isinstance(leaf, Member):
            continue
        if leaf.audience == key:
            errors[f"{path}.audience"] = "an audience cannot contain itself"
        elif lookup(leaf.audience) is None:
            errors[f"{path}.audience"] = f"no audience with key {leaf.audience!r}"
        else:
            cycle = _path_back(leaf.audience, key, lookup, [key], set())
            if cycle:
                errors[f"{path}.audience"] = "creates a cycle: " + " → ".join(cycle)
    return errors


def check_computed(node: Node, defined: set[str]) -> dict[str, str]:
    """Errors by JSON path for user-defined computed traits that are not in `defined`."""
    hint = "define it under /admin/v1/identity/computed-traits"
    return {
        f"{path}.computed": f"no computed trait named {leaf.name!r} ({hint})"
        for path, leaf in leaves(node)
        if isinstance(leaf, Computed) and leaf.name not in COMPUTED and leaf.name not in defined
    }


def defined_computed(ch: Client) -> set[str]:
    """Names of the user-defined computed traits."""
    return {definition.name for definition in read_definitions(ch)}


def _path_back(start: str, target: str, lookup: Lookup, trail: list[str], seen: set[str]) -> list[str] | None:
    """The chain of references from `start` back to `target`, if there is one (depth-first)."""
    seen.add(start)
    trail = [*trail, start]
    definition = lookup(start)
    for ref in sorted(referenced_audiences(definition) if definition else ()):
        if ref == target:
            return [*trail, target]
        found = None if ref in seen else _path_back(ref, target, lookup, trail, seen)
        if found:
            return found
    return None
