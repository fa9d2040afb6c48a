"""Per-event limits measured after the batch's context and integrations are merged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from collector.body import MAX_EVENT_BYTES, MAX_KEYS
from collector.limits import measure, shape_problem
from collector.normalize import Defaults, Event, Rejection, normalize


def item(**extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "E", "userId": "u", "messageId": "m", **extra}


def outcome(event: dict[str, Any], batch: dict[str, Any]) -> Event | Rejection:
    return normalize(event, orjson.dumps(event), Defaults.of(batch), datetime.now(UTC), None, False)


def test_a_big_batch_context_counts_against_every_item_it_reaches() -> None:
    batch = {"context": {"page": {"title": "x" * (MAX_EVENT_BYTES - 50)}, "locale": "de"}}
    refused = outcome(item(), batch)
    assert isinstance(refused, Rejection) and refused.reason == "event_too_large"
    overriding = outcome(item(context={"page": {"title": "own"}}), batch)
    assert isinstance(overriding, Event) and overriding.message["context"] == {
        "page": {"title": "own"},
        "locale": "de",
    }
    assert isinstance(outcome(item(), {"context": {"page": {"title": "x" * 1000}}}), Event)


def test_batch_keys_and_depth_count_too() -> None:
    keys = {"integrations": {f"D{i}": True for i in range(MAX_KEYS - 10)}}
    assert isinstance(outcome(item(), keys), Event)
    refused = outcome(item(properties={f"p{i}": i for i in range(20)}), keys)
    assert isinstance(refused, Rejection) and refused.reason == "too_many_keys"
    deep: Any = 1
    for _ in range(30):
        deep = {"a": deep}
    too_deep = outcome(item(), {"context": {"deep": deep}})
    assert isinstance(too_deep, Rejection) and too_deep.reason == "too_deep"
    assert isinstance(outcome(item(context={"deep": 1}), {"context": {"deep": deep}}), Event)


def test_measure_is_iterative_and_stops_past_the_limits() -> None:
    deep: Any = []
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = [deep]
    depth, _ = measure(deep)
    assert 24 < depth < 100 and shape_problem(deep) == "too_deep"
    assert shape_problem({"a": {"b": 1}}, b'{"a":{"b":1}}') is None
