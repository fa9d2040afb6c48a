"""The text form: Segment-like examples, round trips over a generated table, errors at offsets."""

from __future__ import annotations

import orjson
import pytest

from activation.audiences.codec import from_json, to_json
from activation.audiences.errors import InvalidDefinition
from activation.audiences.parser import parse
from activation.audiences.printer import render
from activation.audiences.tree import And, Compare, Computed, Count, Event, Member, Not, Or, Property, Trait
from tests.activation.audiences.audience_cases import cases

SEGMENT_LIKE = (
    "event('Order Completed').where(property('total') > 50).within(30 days).count() >= 2"
    " and trait('plan') = 'pro'"
)
EXAMPLES = {
    SEGMENT_LIKE: And(
        (
            Event("Order Completed", (Property("total", Compare(">", 50)),), 30, None, Count(">=", 2)),
            Trait("plan", Compare("=", "pro")),
        )
    ),
    "not audience('churned')": Not(Member("churned")),
    "computed('lifetime_revenue') > 100": Computed("lifetime_revenue", ">", 100),
    "trait('email').exists()": Trait("email", Compare("exists")),
    "trait('country') in ('DE', 'FR')": Trait("country", Compare("in", ("DE", "FR"))),
    "event('Signed Up').between('2026-01-01', '2026-02-01').count() >= 1": Event(
        "Signed Up", between=("2026-01-01", "2026-02-01")
    ),
    "trait('bio').contains('founder')": Trait("bio", Compare("contains", "founder")),
    "trait('plan') ≠ 'free' or trait('plan') <> 'trial'": Or(
        (Trait("plan", Compare("!=", "free")), Trait("plan", Compare("!=", "trial")))
    ),
    "event('Page Viewed')": Event("Page Viewed"),
    "(trait('a') = 1 or trait('b') = true) and not (trait('c') <= -2.5)": And(
        (
            Or((Trait("a", Compare("=", 1)), Trait("b", Compare("=", True)))),
            Not(Trait("c", Compare("<=", -2.5))),
        )
    ),
    'TRAIT("x") = "it\'s" AND Event(\'e\').within(1 day).count() = 0': And(
        (Trait("x", Compare("=", "it's")), Event("e", within_days=1, count=Count("=", 0)))
    ),
}


@pytest.mark.parametrize("text", list(EXAMPLES))
def test_examples_parse_to_the_expected_tree(text: str) -> None:
    assert parse(text) == EXAMPLES[text]


_CASES = cases()


@pytest.mark.parametrize("index", range(len(_CASES)))
def test_generated_round_trips(index: int) -> None:
    """text → tree → text → tree, and tree → JSON → tree, for a seeded table of 300 trees."""
    tree = _CASES[index]
    text = render(tree)
    assert parse(text) == tree, text
    assert render(parse(text)) == text
    assert from_json(orjson.loads(orjson.dumps(to_json(tree)))) == tree


def test_the_generated_table_covers_every_kind_of_node() -> None:
    texts = " ".join(render(tree) for tree in _CASES)
    for piece in (
        "trait(",
        "event(",
        "computed(",
        "audience(",
        " and ",
        " or ",
        "not ",
        ".where(",
        ".within(",
        ".between(",
        ".exists()",
        ".contains(",
        " in (",
        "\\0",
        "\\'",
        "\\\\",
    ):
        assert piece in texts, piece


def test_a_single_condition_group_is_the_condition() -> None:
    assert from_json({"and": [{"audience": "x"}]}) == Member("x")


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("trait('plan') = ", 16, "expected a string"),
        ("trait('plan') = 'pro' and", 25, "expected trait"),
        ("trait('plan') = 'pro')", 21, "expected 'and', 'or' or the end"),
        ("trait('plan' = 'pro'", 13, "expected ')'"),
        ("trait('plan') = 'pro", 16, "unterminated string"),
        ("trait('plan') ~ 'pro'", 14, "unexpected character"),
        ("trait('a') = 'x' and computed('Age') > 1", 30, "or the name of a user-defined computed trait"),
        ("event('x').within(0 days)", 18, "from 1 to 36500"),
        ("trait('a') = 'x' and event('e').count() >= -1", 43, "$.and[1].count.value"),
        ("event('e').within(3 weeks)", 20, "expected 'days'"),
        ("event('e').between('2026-02-01', '2026-01-01')", 33, "after the start"),
        ("event('e').between('2026-13-01', '2026-01-01')", 19, "ISO 8601"),
        ("trait('a') in (1, 2, 'x', [3])", 26, "unexpected character"),
        ("trait('a').contains(3)", 20, "contains takes a string"),
        ("trait('a') > true", 13, "takes a number or a string"),
        ("event('e').sum()", 11, "expected one of where"),
        ("audience('')", 9, "non-empty string"),
        ("trait('x') = 'a' or not trait('y').exists() and trait('z') = 'bad\\q'", 65, "unknown escape"),
    ],
)
def test_text_errors_point_at_the_offset(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse(text)
    assert caught.value.offset == offset, caught.value.fields
    assert list(caught.value.fields) == ["query"]
    assert fragment in caught.value.fields["query"]
    assert caught.value.fields["query"].startswith(f"offset {offset}: ")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(InvalidDefinition, match="nested deeper"):
        parse("not " * 500 + "trait('a').exists()")
    with pytest.raises(InvalidDefinition, match="nested deeper"):
        parse("(" * 500 + "trait('a').exists()" + ")" * 500)


def test_huge_text_is_refused() -> None:
    with pytest.raises(InvalidDefinition, match="longer than"):
        parse("trait('a') in (" + ", ".join(["'x'"] * 10_000) + ")")
