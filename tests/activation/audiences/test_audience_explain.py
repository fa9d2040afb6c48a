"""Explain: each condition evaluated for one profile, with what was observed, folded like the tree."""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from activation.audiences.explain import explain
from activation.audiences.parser import parse
from tests.activation.audiences.audience_rows import add_profile, event_row, insert_events, person

QUERY = (
    "trait('ns') = '{ns}' and (event('Order Completed').within(30 days).count() >= 2"
    " or computed('lifetime_revenue') > 100) and not trait('plan') = 'free'"
)


def test_explain_says_why_a_profile_is_in_or_out(ch: Client, ns: str, now: datetime) -> None:
    a, b = person(ch, ns, "a", plan="pro"), person(ch, ns, "b", plan="free")
    add_profile(ch, b, version=2, lifetime_revenue=250.0)
    insert_events(ch, [event_row(event="Order Completed", user_id=f"{ns}-u-a") for _ in range(3)])
    tree = parse(QUERY.format(ns=ns))
    inside = explain(ch, tree, now, a)
    assert inside["found"] and inside["member"]
    assert [(c["path"], c["result"]) for c in inside["conditions"]] == [
        ("$.and[0]", True),
        ("$.and[1].or[0]", True),
        ("$.and[1].or[1]", False),
        ("$.and[2].not", False),
    ]
    assert inside["conditions"][1]["observed"] == {"count": 3}
    assert inside["conditions"][1]["condition"] == "event('Order Completed').within(30 days).count() >= 2"
    assert inside["conditions"][3]["observed"] == {"value": "pro", "set": True}
    outside = explain(ch, tree, now, b)
    assert not outside["member"]
    assert outside["tree"]["items"][1] == {
        "path": "$.and[1]",
        "op": "or",
        "result": True,
        "items": [
            {
                "path": "$.and[1].or[0]",
                "condition": "event('Order Completed').within(30 days).count() >= 2",
                "result": False,
                "observed": {"count": 0},
            },
            {
                "path": "$.and[1].or[1]",
                "condition": "computed('lifetime_revenue') > 100",
                "result": True,
                "observed": {"lifetime_revenue": "250"},
            },
        ],
    }
    assert outside["tree"]["items"][2]["result"] is False  # not plan = free
    assert explain(ch, tree, now, f"{ns}-nobody")["found"] is False
