"""The JSON form of a definition: validate a decoded JSON value into a tree, and back.

Every problem is reported at its JSON path (`$.and[1].value`), all of them at once. Names and
values are only ever checked for type and size here: they reach SQL as bound parameters.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from activation.audiences import limits
from activation.audiences.errors import InvalidDefinition
from activation.audiences.tree import (
    COMPARISONS,
    COMPUTED,
    ENRICHMENT,
    ENRICHMENT_OPS,
    EVENT_KINDS,
    TRAIT_OPS,
    And,
    Compare,
    Computed,
    Count,
    Enrichment,
    Event,
    Filter,
    Member,
    Node,
    Not,
    Or,
    Property,
    Scalar,
    Trait,
    Value,
)

# The names identity gives user-defined computed traits (activation/identity/computed.py).
USER_COMPUTED_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ALIASES = {"≠": "!=", "<>": "!=", "==": "="}
_KINDS = ("and", "or", "not", "trait", *EVENT_KINDS, "computed", "audience")
_KEYS = {
    "trait": {"trait", "op", "value"},
    **{kind: {kind, "where", "within_days", "between", "count"} for kind in EVENT_KINDS},
    "computed": {"computed", "op", "value"},
    "audience": {"audience"},
}


class _Invalid(Exception):
    """Abandons the current node; its message is already recorded."""


class _Reader:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.conditions = 0

    def fail(self, path: str, message: str) -> _Invalid:
        self.errors.setdefault(path, message)
        return _Invalid(message)

    def node(self, raw: Any, path: str, depth: int) -> Node:
        if depth > limits.MAX_DEPTH:
            raise self.fail(path, f"nested deeper than {limits.MAX_DEPTH} levels")
        if not isinstance(raw, dict):
            raise self.fail(path, "must be an object")
        kinds = [k for k in _KINDS if k in raw]
        if len(kinds) != 1:
            raise self.fail(path, f"must have exactly one of {', '.join(_KINDS)}")
        kind = kinds[0]
        if kind in ("and", "or", "not"):
            return self.combination(raw, kind, path, depth)
        self.conditions += 1
        if self.conditions > limits.MAX_CONDITIONS:
            raise self.fail(path, f"more than {limits.MAX_CONDITIONS} conditions")
        self.unknown_keys(raw, _KEYS[kind], path)
        if kind == "trait":
            return Trait(self.name(raw["trait"], f"{path}.trait"), self.compare(raw, path, TRAIT_OPS))
        if kind in EVENT_KINDS:
            return self.event(raw, path, kind)
        if kind == "computed":
            return self.computed(raw, path)
        return Member(self.name(raw["audience"], f"{path}.audience"))

    def combination(self, raw: dict[str, Any], kind: str, path: str, depth: int) -> Node:
        self.unknown_keys(raw, {kind}, path)
        if kind == "not":
            return Not(self.node(raw["not"], f"{path}.not", depth + 1))
        items = raw[kind]
        if not isinstance(items, list) or not items:
            raise self.fail(f"{path}.{kind}", "must be a non-empty list of conditions")
        nodes = self.each(items, f"{path}.{kind}", lambda item, p: self.node(item, p, depth + 1))
        if len(nodes) == 1:  # a group of one is the condition itself
            return nodes[0]  # type: ignore[no-any-return]
        return And(tuple(nodes)) if kind == "and" else Or(tuple(nodes))

    def each(self, items: list[Any], path: str, read: Any) -> list[Any]:
        out = []
        for i, item in enumerate(items):
            try:
                out.append(read(item, f"{path}[{i}]"))
            except _Invalid:
                continue
        if len(out) != len(items):
            raise _Invalid(path)
        return out

    def unknown_keys(self, raw: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in raw:
            if key not in allowed:
                self.fail(f"{path}.{key}", "unknown field")

    def name(self, raw: Any, path: str) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(path, "must be a non-empty string")
        return self.text(raw, path, limits.MAX_NAME_CHARS)

    def text(self, raw: str, path: str, max_chars: int) -> str:
        if len(raw) > max_chars:
            raise self.fail(path, f"longer than {max_chars} characters")
        try:
            raw.encode()
        except UnicodeEncodeError:
            raise self.fail(path, "must be valid Unicode text (no lone surrogates)") from None
        return raw

    def op(self, raw: Any, path: str, allowed: tuple[str, ...]) -> str:
        op = ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        if op not in allowed:
            raise self.fail(path, f"must be one of {', '.join(allowed)}")
        return str(op)

    def scalar(self, raw: Any, path: str) -> Scalar:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float):
            if (isinstance(raw, float) and not math.isfinite(raw)) or abs(raw) > limits.MAX_ABS_NUMBER:
                raise self.fail(path, f"must be a finite number within ±{limits.MAX_ABS_NUMBER}")
            return raw
        if isinstance(raw, str):
            return self.text(raw, path, limits.MAX_STRING_CHARS)
        raise self.fail(path, "must be a string, a number or a boolean")

    def compare(self, raw: dict[str, Any], path: str, allowed: tuple[str, ...]) -> Compare:
        op = self.op(raw.get("op"), f"{path}.op", allowed)
        value, vpath = raw.get("value"), f"{path}.value"
        if op == "exists":
            if value is not None:
                raise self.fail(vpath, "exists takes no value")
            return Compare(op)
        if op == "in":
            return Compare(op, self.in_list(value, vpath))
        scalar = self.scalar(value, vpath)
        if op == "contains" and not isinstance(scalar, str):
            raise self.fail(vpath, "contains takes a string")
        if op in ("<", ">", "<=", ">=") and isinstance(scalar, bool):
            raise self.fail(vpath, f"{op} takes a number or a string")
        return Compare(op, scalar)

    def in_list(self, raw: Any, path: str) -> Value:
        if not isinstance(raw, list) or not raw:
            raise self.fail(path, "in takes a non-empty list")
        if len(raw) > limits.MAX_IN_VALUES:
            raise self.fail(path, f"in takes at most {limits.MAX_IN_VALUES} values, got {len(raw)}")
        return tuple(self.each(raw, path, self.scalar))

    def event(self, raw: dict[str, Any], path: str, kind: str) -> Event:
        name = self.name(raw[kind], f"{path}.{kind}")
        where = self.filters(raw.get("where", []), f"{path}.where")
        within = raw.get("within_days")
        if within is not None and "between" in raw:
            raise self.fail(f"{path}.between", "use within_days or between, not both")
        if within is not None:
            within = self.integer(within, f"{path}.within_days", 1, limits.MAX_WITHIN_DAYS)
        between = self.between(raw["between"], f"{path}.between") if "between" in raw else None
        count = self.count(raw.get("count"), f"{path}.count")
        return Event(name, where, within, between, count, kind)

    def filters(self, raw: Any, path: str) -> tuple[Filter, ...]:
        if not isinstance(raw, list) or len(raw) > limits.MAX_FILTERS:
            raise self.fail(path, f"must be a list of at most {limits.MAX_FILTERS} property filters")
        return tuple(self.each(raw, path, self.filter))

    def filter(self, raw: Any, path: str) -> Filter:
        if isinstance(raw, dict) and "enrichment" in raw and "property" not in raw:
            return self.enrichment(raw, path)
        if not isinstance(raw, dict) or "property" not in raw:
            raise self.fail(path, "must be an object with property (or enrichment), op and value")
        return self.property(raw, path)

    def enrichment(self, raw: dict[str, Any], path: str) -> Enrichment:
        self.unknown_keys(raw, {"enrichment", "op", "value"}, path)
        name = raw["enrichment"]
        if not isinstance(name, str) or name not in ENRICHMENT:
            raise self.fail(f"{path}.enrichment", f"must be one of {', '.join(ENRICHMENT)}")
        test = self.compare(raw, path, ENRICHMENT_OPS)
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        if test.op != "exists" and not all(isinstance(v, str) for v in values):
            raise self.fail(f"{path}.value", "enrichment values are strings")
        return Enrichment(name, test)

    def property(self, raw: dict[str, Any], path: str) -> Property:
        self.unknown_keys(raw, {"property", "op", "value"}, path)
        name = self.name(raw["property"], f"{path}.property")
        if any(not part for part in name.split(".")):
            raise self.fail(f"{path}.property", "a property path has no empty segment")
        return Property(name, self.compare(raw, path, TRAIT_OPS))

    def integer(self, raw: Any, path: str, low: int, high: int) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise self.fail(path, f"must be an integer from {low} to {high}")
        return raw

    def between(self, raw: Any, path: str) -> tuple[str, str]:
        if not isinstance(raw, list) or len(raw) != 2:
            raise self.fail(path, "must be a list of two dates")
        start, end = self.each(raw, path, self.date)
        if start >= end:
            raise self.fail(f"{path}[1]", "must be after the start")
        return (raw[0], raw[1])

    def date(self, raw: Any, path: str) -> datetime:
        try:
            if not isinstance(raw, str) or len(raw) > 40:
                raise ValueError(raw)
            moment = parse_time(raw).astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.fail(path, "must be an ISO 8601 date or date-time") from None
        if not limits.MIN_DATE <= moment <= limits.MAX_DATE:
            low, high = limits.MIN_DATE.date(), limits.MAX_DATE.date()
            raise self.fail(path, f"must be from {low} to {high} (what ClickHouse can store)")
        return moment

    def count(self, raw: Any, path: str) -> Count:
        if raw is None:
            return Count()
        if not isinstance(raw, dict):
            raise self.fail(path, "must be an object with op and value")
        self.unknown_keys(raw, {"op", "value"}, path)
        op = self.op(raw.get("op"), f"{path}.op", COMPARISONS)
        return Count(op, self.integer(raw.get("value"), f"{path}.value", 0, limits.MAX_COUNT))

    def computed(self, raw: dict[str, Any], path: str) -> Computed:
        name = raw["computed"]
        if not isinstance(name, str) or not (name in COMPUTED or USER_COMPUTED_NAME.match(name)):
            message = f"one of {', '.join(COMPUTED)}, or the name of a user-defined computed trait"
            raise self.fail(f"{path}.computed", message)
        op = self.op(raw.get("op"), f"{path}.op", COMPARISONS)
        if name in COMPUTED and COMPUTED[name][1] == "time":
            self.date(raw.get("value"), f"{path}.value")
            return Computed(name, op, str(raw["value"]))
        value = raw.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{path}.value", "must be a number")
        return Computed(name, op, self.scalar(value, f"{path}.value"))


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_json(raw: Any) -> Node:
    """Validate a decoded JSON definition; raise `InvalidDefinition` listing every bad node."""
    reader = _Reader()
    try:
        node = reader.node(raw, "$", 0)
    except _Invalid:
        node = None
    if reader.errors or node is None:
        raise InvalidDefinition(reader.errors or {"$": "invalid definition"})
    return node


def to_json(node: Node) -> dict[str, Any]:
    """The canonical JSON form of a tree (`from_json(to_json(t)) == t`)."""
    if isinstance(node, And | Or):
        return {"and" if isinstance(node, And) else "or": [to_json(item) for item in node.items]}
    if isinstance(node, Not):
        return {"not": to_json(node.item)}
    if isinstance(node, Trait):
        return {"trait": node.name, **_compare_json(node.test)}
    if isinstance(node, Computed):
        return {"computed": node.name, "op": node.op, "value": node.value}
    if isinstance(node, Member):
        return {"audience": node.audience}
    return _event_json(node)


def _compare_json(test: Compare) -> dict[str, Any]:
    if test.op == "exists":
        return {"op": "exists"}
    value = list(test.value) if isinstance(test.value, tuple) else test.value
    return {"op": test.op, "value": value}


def _filter_json(item: Filter) -> dict[str, Any]:
    if isinstance(item, Enrichment):
        return {"enrichment": item.field, **_compare_json(item.test)}
    return {"property": item.path, **_compare_json(item.test)}


def _event_json(node: Event) -> dict[str, Any]:
    out: dict[str, Any] = {node.kind: node.name}
    if node.where:
        out["where"] = [_filter_json(f) for f in node.where]
    if node.within_days is not None:
        out["within_days"] = node.within_days
    if node.between is not None:
        out["between"] = list(node.between)
    out["count"] = {"op": node.count.op, "value": node.count.value}
    return out
