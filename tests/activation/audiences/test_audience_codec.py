"""The JSON form: validation reports every bad node at its JSON path; hostile types are refused."""

from __future__ import annotations

from typing import Any

import pytest

from activation.audiences import limits
from activation.audiences.codec import from_json, to_json
from activation.audiences.errors import InvalidDefinition
from activation.audiences.tree import Compare, Trait


def _errors(raw: Any) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as caught:
        from_json(raw)
    return caught.value.fields


def test_errors_name_the_path_of_every_bad_node() -> None:
    raw = {
        "and": [
            {"trait": "plan", "op": "=", "value": "pro"},
            {"trait": "plan", "op": "=", "value": {"$ne": 1}},
            {"or": [{"computed": "Age!", "op": ">", "value": 3}, {"event": "x", "within_days": "30"}]},
            {"not": {"audience": 5}},
        ]
    }
    assert _errors(raw) == {
        "$.and[1].value": "must be a string, a number or a boolean",
        "$.and[2].or[0].computed": (
            "one of first_seen, last_seen, event_count, session_count, lifetime_revenue,"
            " or the name of a user-defined computed trait"
        ),
        "$.and[2].or[1].within_days": "must be an integer from 1 to 36500",
        "$.and[3].not.audience": "must be a non-empty string",
    }


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], "$"),
        ("trait('a') = 1", "$"),
        ({}, "$"),
        ({"trait": "a", "event": "b"}, "$"),
        ({"and": []}, "$.and"),
        ({"and": {"trait": "a"}}, "$.and"),
        ({"trait": ["plan"], "op": "=", "value": "x"}, "$.trait"),
        ({"trait": None, "op": "exists"}, "$.trait"),
        ({"trait": "   ", "op": "exists"}, "$.trait"),
        ({"trait": "a", "op": "like", "value": "x"}, "$.op"),
        ({"trait": "a", "op": 1, "value": "x"}, "$.op"),
        ({"trait": "a", "op": "=", "value": None}, "$.value"),
        ({"trait": "a", "op": "=", "value": [1]}, "$.value"),
        ({"trait": "a", "op": "=", "value": float("nan")}, "$.value"),
        ({"trait": "a", "op": "=", "value": float("inf")}, "$.value"),
        ({"trait": "a", "op": "=", "value": 10**30}, "$.value"),
        ({"trait": "a", "op": "=", "value": "x" * 5000}, "$.value"),
        ({"trait": "a", "op": "=", "value": "\ud800"}, "$.value"),
        ({"trait": "a", "op": "exists", "value": 1}, "$.value"),
        ({"trait": "a", "op": "in", "value": "x"}, "$.value"),
        ({"trait": "a", "op": "in", "value": []}, "$.value"),
        ({"trait": "a", "op": "in", "value": ["x", {"y": 1}]}, "$.value[1]"),
        ({"trait": "a", "op": "=", "value": "x", "sql": "1=1"}, "$.sql"),
        ({"event": "e", "where": {"property": "a"}}, "$.where"),
        ({"event": "e", "where": [{"property": "a..b", "op": "exists"}]}, "$.where[0].property"),
        ({"event": "e", "where": [{"property": 7, "op": "exists"}]}, "$.where[0].property"),
        ({"event": "e", "within_days": 3, "between": ["2026-01-01", "2026-02-01"]}, "$.between"),
        ({"event": "e", "within_days": True}, "$.within_days"),
        ({"event": "e", "between": ["2026-01-01"]}, "$.between"),
        ({"event": "e", "between": ["2026-01-01", "tomorrow"]}, "$.between[1]"),
        ({"event": "e", "count": {"op": ">=", "value": 1.5}}, "$.count.value"),
        ({"event": "e", "count": {"op": "in", "value": 1}}, "$.count.op"),
        ({"event": "e", "count": 2}, "$.count"),
        ({"computed": "lifetime_revenue", "op": ">", "value": "100"}, "$.value"),
        ({"computed": "first_seen", "op": ">", "value": 5}, "$.value"),
        ({"computed": "events; DROP TABLE x", "op": ">", "value": 5}, "$.computed"),
        ({"audience": ["a"]}, "$.audience"),
    ],
)
def test_bad_nodes_are_reported_at_their_path(raw: Any, path: str) -> None:
    assert path in _errors(raw)


def test_in_lists_are_capped() -> None:
    values = [str(i) for i in range(limits.MAX_IN_VALUES)]
    assert from_json({"trait": "a", "op": "in", "value": values}) == Trait("a", Compare("in", tuple(values)))
    errors = _errors({"trait": "a", "op": "in", "value": [*values, "one more"]})
    assert errors == {
        "$.value": f"in takes at most {limits.MAX_IN_VALUES} values, got {limits.MAX_IN_VALUES + 1}"
    }


def test_nesting_and_condition_counts_are_capped() -> None:
    deep: dict[str, Any] = {"audience": "a"}
    for _ in range(limits.MAX_DEPTH + 2):
        deep = {"not": deep}
    assert "nested deeper" in next(iter(_errors(deep).values()))
    wide = {"or": [{"audience": f"a{i}"} for i in range(limits.MAX_CONDITIONS + 1)]}
    assert f"$.or[{limits.MAX_CONDITIONS}]" in _errors(wide)


def test_aliases_become_the_canonical_operator() -> None:
    assert from_json({"trait": "a", "op": "≠", "value": "x"}) == Trait("a", Compare("!=", "x"))
    assert to_json(from_json({"trait": "a", "op": "<>", "value": "x"}))["op"] == "!="
