"""The compiler: SQL text never depends on a definition's names or values, only on its shape."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from activation.audiences.compiler import compile_audience
from activation.audiences.explain import explain_sql
from activation.audiences.parser import parse
from activation.audiences.tree import (
    And,
    Compare,
    Computed,
    Event,
    Member,
    Node,
    Not,
    Or,
    Property,
    Scalar,
    Trait,
)
from tests.activation.audiences.audience_cases import HOSTILE, cases

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# identity_current: the view of identity_map (newest mapping per identifier) that identity.resolve reads
TABLES = {
    "profiles",
    "profile_traits",
    "events",
    "identity_map",
    "identity_current",
    "audience_membership_changes",
    "audiences",
}
_CASES = cases()


def _other(value: Scalar) -> Scalar:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return type(value)(value + 7)
    return "other value"


def _scrub_test(test: Compare) -> Compare:
    if isinstance(test.value, tuple):
        return Compare(test.op, tuple(_other(v) for v in test.value))
    return Compare(test.op, None if test.value is None else _other(test.value))


def scrub(node: Node) -> Node:
    """The same shape with every name and value replaced."""
    if isinstance(node, And | Or):
        return type(node)(tuple(scrub(item) for item in node.items))
    if isinstance(node, Not):
        return Not(scrub(node.item))
    if isinstance(node, Trait):
        return Trait("renamed", _scrub_test(node.test))
    if isinstance(node, Computed):
        value = "2020-02-02" if isinstance(node.value, str) else node.value + 1
        return replace(node, value=value)
    if isinstance(node, Member):
        return Member("renamed")
    where = tuple(Property("p" if "." not in f.path else "p.q", _scrub_test(f.test)) for f in node.where)
    between = ("2020-01-01", "2020-01-02") if node.between else None
    return replace(node, name="renamed", where=where, between=between)


@pytest.mark.parametrize("index", range(len(_CASES)))
def test_sql_text_depends_only_on_the_shape(index: int) -> None:
    tree = _CASES[index]
    sql, params = compile_audience(tree, NOW)
    scrubbed_sql, scrubbed_params = compile_audience(scrub(tree), NOW)
    assert _normal(sql) == _normal(scrubbed_sql)
    assert params != scrubbed_params or not params


def _normal(sql: str) -> str:
    """Property paths of 2 segments bind 2 parameters: compare modulo parameter numbering."""
    return re.sub(r"\{p\d+:", "{p:", re.sub(r"(, \{p\d+:String\})+\)", ", …)", sql))


@pytest.mark.parametrize("index", range(len(_CASES)))
def test_sql_reads_only_allow_listed_tables(index: int) -> None:
    sql, _ = compile_audience(_CASES[index], NOW, profile_id="someone")
    assert set(re.findall(r"(?:FROM|JOIN)\s+(\w+)", sql)) <= TABLES
    for forbidden in ("system.", "url(", "file(", "remote(", "SETTINGS", "FORMAT", "--", "/*", ";", "\\"):
        assert forbidden not in sql


def _hostile_tree(text: str) -> Node:
    return And(
        (
            Trait(text, Compare("=", text)),
            Trait("t", Compare("in", (text, "x"))),
            Event(text, (Property("p", Compare("contains", text)),)),
            Member(text),
        )
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_is_only_ever_a_parameter(hostile: str) -> None:
    """The SQL of a hostile definition is the SQL of a benign one; the text travels as parameters."""
    for build in (
        lambda t: compile_audience(_hostile_tree(t), NOW, t),
        lambda t: explain_sql(_hostile_tree(t), NOW, t),
    ):
        sql, params = build(hostile)
        benign_sql, _ = build("benign")
        assert sql == benign_sql
        assert hostile in params.values()
        assert all(re.fullmatch(r"p\d+", name) for name in params)


def test_example_compiles_to_bound_parameters() -> None:
    tree = parse(
        "event('Order Completed').where(property('total') > 50).within(30 days).count() >= 2"
        " and trait('plan') = 'pro'"
    )
    sql, params = compile_audience(tree, NOW)
    assert sql.startswith("SELECT profile_id FROM profiles FINAL WHERE deleted = 0 AND is_bot = 0 AND (")
    assert params == {
        "p0": 2,
        "p1": "Order Completed",
        "p2": "2026-10-23 12:00:00.000",
        "p3": "total",
        "p4": 50.0,
        "p5": "plan",
        "p6": "pro",
    }
    for placeholder in ("{p1:String}", "{p2:DateTime64(3, 'UTC')}", "{p4:Float64}", "{p0:UInt64}"):
        assert placeholder in sql
    assert "is_bot = 0" in sql and "identity_current" in sql and "profile_traits FINAL" in sql


def test_counts_that_hold_for_zero_events_select_profiles_without_events() -> None:
    at_least, fewer = (compile_audience(parse(f"event('x').count() {c}"), NOW)[0] for c in (">= 2", "< 2"))
    assert "profile_id IN (SELECT profile_id FROM" in at_least
    assert "profile_id NOT IN (SELECT profile_id FROM" in fewer and "AND NOT (count() < {" in fewer


def test_computed_traits_come_from_the_allow_list() -> None:
    sql, params = compile_audience(parse("computed('first_seen') < '2026-01-01T10:00:00+02:00'"), NOW)
    assert "(first_seen < {p0:DateTime64(3, 'UTC')})" in sql
    assert params == {"p0": "2026-01-01 08:00:00.000"}
    # any other name is a user-defined computed trait: a bound value, never a column
    hostile, bound = compile_audience(Computed("version; DROP TABLE x", ">", 1), NOW)
    assert "DROP" not in hostile and "version; DROP TABLE x" in bound.values()
    assert "profile_id IN (SELECT profile_id FROM profile_computed_traits FINAL" in hostile
