"""Per-event limits (32 KB, nesting depth, key count), measured on the event as it will be stored:
the item merged with its batch's top-level `context` and `integrations`.

The batch defaults are measured once per request (one `Footprint` per top-level key); each item
then adds the footprints of the defaults it does not override, so a 114 KB batch context cannot
ride along 200 small items. Every walk here is iterative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from collector.body import MAX_DEPTH, MAX_EVENT_BYTES, MAX_KEYS

MERGED = ("context", "integrations")
_ENTRY_DEPTH = 2  # event → context → entry value
_SHAPE_DETAIL = f"an event may nest {MAX_DEPTH} levels and hold {MAX_KEYS} keys (batch defaults included)"


@dataclass(frozen=True)
class Footprint:
    """What one batch-level entry (`context.page`, `integrations.All`…) adds to an event."""

    size_bytes: int
    depth: int
    keys: int


def measure(value: Any, keys: int = 0) -> tuple[int, int]:
    """(deepest nesting, key count) of `value`, counting up from `keys`; stops once past a limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH or keys > MAX_KEYS:
            break
        if isinstance(node, dict):
            keys += len(node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest, keys


def shape_problem(value: Any, raw: bytes = b"", extra_keys: int = 0) -> str | None:
    """A reason code if `value` nests deeper than MAX_DEPTH or holds more than MAX_KEYS keys
    (plus `extra_keys` from batch defaults).

    Counting brackets and colons in the raw JSON bounds depth and key count from above, so the
    walk is skipped for ordinary events (the common case costs two C-speed byte counts).
    """
    if raw and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH and raw.count(b":") + extra_keys <= MAX_KEYS:
        return None
    depth, keys = measure(value, extra_keys)
    if depth > MAX_DEPTH:
        return "too_deep"
    return "too_many_keys" if keys > MAX_KEYS else None


def footprint(key: str, value: Any) -> Footprint:
    depth, keys = measure(value)
    size = len(orjson.dumps(key)) + 2 + len(orjson.dumps(value)) if depth <= MAX_DEPTH else 0
    return Footprint(size, depth + _ENTRY_DEPTH, keys + 1)


@dataclass(frozen=True)
class BatchFootprint:
    """Footprints of a batch's defaults, per object and key, with their totals."""

    entries: dict[str, dict[str, Footprint]] = field(default_factory=dict)
    size_bytes: int = 0
    keys: int = 0
    deep: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, objects: dict[str, dict[str, Any]]) -> BatchFootprint:
        entries = {name: {k: footprint(k, v) for k, v in obj.items()} for name, obj in objects.items()}
        prints = [(name, key, fp) for name, per in entries.items() for key, fp in per.items()]
        return cls(
            entries,
            sum(fp.size_bytes for _, _, fp in prints),
            sum(fp.keys for _, _, fp in prints),
            tuple((name, key) for name, key, fp in prints if fp.depth > MAX_DEPTH),
        )

    def added(self, item: dict[str, Any]) -> tuple[int, int, bool]:
        """(bytes, keys, too deep) that merging adds to `item`: defaults it overrides add nothing."""
        size, keys = self.size_bytes, self.keys
        for name in MERGED:
            own, defaults = item.get(name), self.entries.get(name)
            if type(own) is dict and defaults:
                for key in own.keys() & defaults.keys():
                    size, keys = size - defaults[key].size_bytes, keys - defaults[key].keys
        deep = any(not _overrides(item, name, key) for name, key in self.deep)
        return size, keys, deep


def _overrides(item: dict[str, Any], name: str, key: str) -> bool:
    own = item.get(name)
    return type(own) is dict and key in own


def merged_problem(item: dict[str, Any], raw: bytes, batch: BatchFootprint) -> tuple[str, str] | None:
    """The reason an item breaks a per-event limit once its batch defaults are merged, or None."""
    size, keys, deep = batch.added(item) if batch.entries else (0, 0, False)
    if len(raw) + size > MAX_EVENT_BYTES:
        detail = "with the batch's context and integrations merged" if size else ""
        return "event_too_large", f"an event may be at most {MAX_EVENT_BYTES} bytes {detail}".strip()
    shape = "too_deep" if deep else shape_problem(item, raw, keys)
    return (shape, _SHAPE_DETAIL) if shape else None
