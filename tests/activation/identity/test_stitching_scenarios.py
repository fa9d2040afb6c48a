"""The stitching scenario table: events in, exact profiles out, against the real ClickHouse.

Each scenario inserts its events phase by phase, runs the incremental stitch after each phase,
checks the profiles, then runs a full restitch and checks that it changes nothing (incremental
and full agree, and a re-run writes no mapping row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from activation.identity import store
from activation.identity.identifiers import Identifier, profile_id_for
from activation.identity.rules import rules_from_dict
from activation.identity.stitching import stitch_full, stitch_incremental
from tests.activation.identity.conftest import World

Ev = tuple[str, float, dict[str, Any]]


def ev(type_: str, t: float = 0, **kw: Any) -> Ev:
    return (type_, t, kw)


@dataclass(frozen=True)
class Scenario:
    name: str
    phases: list[list[Ev]]
    expect: list[set[str]]
    conflicts: int = 0
    rules: dict[str, Any] = field(default_factory=dict)
    canonical: tuple[str, ...] = ()


S = Scenario
SCENARIOS = [
    S(
        "anonymous_only",
        [[ev("track", 0, anon="a1"), ev("page", 1, anon="a2")]],
        [{"anonymous_id:a1"}, {"anonymous_id:a2"}],
    ),
    S(
        "anonymous_then_identified",
        [[ev("track", 0, anon="a1"), ev("identify", 5, anon="a1", user="u1")]],
        [{"anonymous_id:a1", "user_id:u1"}],
        canonical=("user_id:u1",),
    ),
    S(
        "identified_in_a_later_run",
        [[ev("track", 0, anon="a1")], [ev("identify", 5, anon="a1", user="u1")]],
        [{"anonymous_id:a1", "user_id:u1"}],
    ),
    S(
        "cross_device",
        [
            [
                ev("identify", 0, anon="a1", user="u1", device="d1"),
                ev("identify", 9, anon="a2", user="u1", device="d2"),
            ]
        ],
        [{"anonymous_id:a1", "anonymous_id:a2", "user_id:u1", "device_id:d1", "device_id:d2"}],
    ),
    S(
        "shared_device_two_user_ids",
        [
            [
                ev("identify", 0, anon="a1", user="u1", device="d1"),
                ev("identify", 9, anon="a2", user="u2", device="d1"),
            ]
        ],
        [{"anonymous_id:a1", "user_id:u1", "device_id:d1"}, {"anonymous_id:a2", "user_id:u2"}],
        conflicts=1,
    ),
    S(
        "shared_browser_without_reset",
        [[ev("identify", 0, anon="a1", user="u1"), ev("identify", 9, anon="a1", user="u2")]],
        [{"anonymous_id:a1", "user_id:u1"}, {"user_id:u2"}],
        conflicts=1,
    ),
    S(
        "out_of_order_shared_device",
        [
            [ev("identify", 9, anon="a2", user="u2", device="d1")],
            [ev("identify", 0, anon="a1", user="u1", device="d1")],
        ],
        [{"anonymous_id:a1", "user_id:u1", "device_id:d1"}, {"anonymous_id:a2", "user_id:u2"}],
        conflicts=1,
    ),
    S(
        "alias_anonymous_to_user",
        [[ev("alias", 0, prev="a1", user="u1"), ev("track", 1, anon="a1")]],
        [{"anonymous_id:a1", "user_id:u1"}],
    ),
    S(  # an alias is an explicit instruction: it merges past the one-user_id limit
        "alias_old_user_id_to_new_merges",
        [[ev("identify", 0, user="u1", anon="a1"), ev("alias", 5, prev="u1", user="u2")]],
        [{"user_id:u1", "user_id:u2", "anonymous_id:a1"}],
    ),
    S(  # ... but only the alias: a shared device still does not glue a third customer on
        "alias_merge_does_not_open_the_limit_to_other_links",
        [
            [
                ev("identify", 0, user="u1", anon="a1"),
                ev("alias", 5, prev="u1", user="u2"),
                ev("identify", 9, user="u3", anon="a1"),
            ]
        ],
        [{"user_id:u1", "user_id:u2", "anonymous_id:a1"}, {"user_id:u3"}],
        conflicts=1,
    ),
    S(
        "alias_two_user_ids_refused_when_the_rule_says_so",
        [[ev("identify", 0, user="u1"), ev("alias", 5, prev="u1", user="u2")]],
        [{"user_id:u1"}, {"user_id:u2"}],
        conflicts=1,
        rules={"alias_overrides_limits": False},
    ),
    S(
        "alias_chain",
        [
            [
                ev("alias", 0, prev="a1", user="u1"),
                ev("alias", 5, prev="u1", user="u2"),
                ev("alias", 9, prev="u2", user="u3"),
            ]
        ],
        [{"anonymous_id:a1", "user_id:u1", "user_id:u2", "user_id:u3"}],
        rules={"limits": {"user_id": 3}},
    ),
    S(
        "alias_cycle",
        [
            [
                ev("alias", 0, prev="u1", user="u2"),
                ev("alias", 5, prev="u2", user="u1"),
                ev("identify", 7, anon="a1", user="u1"),
            ]
        ],
        [{"user_id:u1", "user_id:u2", "anonymous_id:a1"}],
        rules={"limits": {"user_id": 2}},
    ),
    S(
        "blocked_user_id_null",
        [[ev("identify", 0, anon="a1", user="!null"), ev("identify", 5, anon="a2", user="!null")]],
        [{"anonymous_id:a1"}, {"anonymous_id:a2"}],
    ),
    S(
        "junk_ids_case_and_whitespace",
        [
            [
                ev("identify", 0, anon="a1", user="!Anonymous"),
                ev("identify", 1, anon="a2", user="!  "),
                ev("identify", 2, anon="a3", user="!UNDEFINED"),
                ev("identify", 3, anon="a4", user="!Anonymous"),
            ]
        ],
        [{"anonymous_id:a1"}, {"anonymous_id:a2"}, {"anonymous_id:a3"}, {"anonymous_id:a4"}],
    ),
    S(
        "all_zero_device_never_glues",
        [
            [
                ev("track", 0, anon="a1", device="!00000000-0000-0000-0000-000000000000"),
                ev("track", 5, anon="a2", device="!00000000-0000-0000-0000-000000000000"),
            ]
        ],
        [{"anonymous_id:a1"}, {"anonymous_id:a2"}],
    ),
    S(
        "junk_anonymous_id_never_glues",
        [[ev("identify", 0, anon="!guest", user="u1"), ev("identify", 5, anon="!guest", user="u2")]],
        [{"user_id:u1"}, {"user_id:u2"}],
    ),
    S(
        "custom_blocked_email",
        [
            [
                ev("identify", 0, anon="a1", user="u1", traits={"email": "!shared@corp.example"}),
                ev("track", 5, anon="a2", ctx_traits={"email": "!SHARED@corp.example"}),
            ]
        ],
        [{"anonymous_id:a1", "user_id:u1"}, {"anonymous_id:a2"}],
        rules={"blocked_values": ["shared@corp.example", "null"]},
    ),
    S(
        "email_normalisation",
        [
            [
                ev("identify", 0, user="u1", traits={"email": "  Foo@Example.COM "}),
                ev("track", 5, anon="a2", ctx_traits={"email": "foo@example.com"}),
            ]
        ],
        [{"user_id:u1", "email:foo@example.com", "anonymous_id:a2"}],
    ),
    S(  # with default_phone_region, a national number is the same phone as its E.164 form
        "national_phone_with_the_default_region",
        [
            [
                ev("identify", 0, user="u1", traits={"phone": "07700 {p}"}),
                ev("track", 5, anon="a2", ctx_traits={"phone": "+44 7700 {p}"}),
            ]
        ],
        [{"user_id:u1", "phone:+447700{p}", "anonymous_id:a2"}],
        rules={"default_phone_region": "GB"},
    ),
    S(
        "phone_normalisation_e164",
        [
            [
                ev("identify", 0, user="u1", traits={"phone": "+1 (415) {p}"}),
                ev("track", 5, anon="a2", ctx_traits={"phone": "00 1 415 {p}"}),
                ev("track", 6, anon="a3", ctx_traits={"phone": "+1-415-{p}"}),
            ]
        ],
        [{"user_id:u1", "phone:+1415{p}", "anonymous_id:a2", "anonymous_id:a3"}],
    ),
    S(
        "invalid_phone_and_email_ignored",
        [[ev("identify", 0, anon="a1", user="u1", traits={"phone": "!12345", "email": "!not-an-email"})]],
        [{"anonymous_id:a1", "user_id:u1"}],
    ),
    S(
        "two_user_ids_sharing_an_email",
        [
            [
                ev("identify", 0, user="u1", traits={"email": "x@y.example"}),
                ev("identify", 5, user="u2", traits={"email": "x@y.example"}),
            ]
        ],
        [{"user_id:u1", "email:x@y.example"}, {"user_id:u2"}],
        conflicts=1,
    ),
    S(
        "email_limit",
        [
            [
                ev("identify", 0, user="u1", traits={"email": "e1@x.example"}),
                ev("identify", 1, user="u1", traits={"email": "e2@x.example"}),
                ev("identify", 2, user="u1", traits={"email": "e3@x.example"}),
            ]
        ],
        [{"user_id:u1", "email:e1@x.example", "email:e2@x.example"}, {"email:e3@x.example"}],
        conflicts=1,
        rules={"limits": {"email": 2}},
    ),
    S(
        "device_limit_keeps_other_links",
        [
            [
                ev("track", 0, anon="a1", user="u1", device="d1"),
                ev("track", 5, anon="a2", user="u1", device="d2"),
            ]
        ],
        [{"user_id:u1", "anonymous_id:a1", "device_id:d1", "anonymous_id:a2"}, {"device_id:d2"}],
        conflicts=1,
        rules={"limits": {"device_id": 1}},
    ),
    S(
        "profile_size_cap",
        [[ev("identify", i, anon=f"a{i}", user="u1") for i in range(1, 5)]],
        [{"user_id:u1", "anonymous_id:a1", "anonymous_id:a2"}, {"anonymous_id:a3"}, {"anonymous_id:a4"}],
        conflicts=2,
        rules={"max_profile_identifiers": 3},
    ),
    S(
        "priority_picks_the_anchor",
        [
            [
                ev("identify", 0, user="u1", traits={"email": "e@x.example"}),
                ev("identify", 5, anon="a2", user="u2", traits={"email": "e@x.example"}),
            ]
        ],
        [{"user_id:u1", "email:e@x.example"}, {"user_id:u2", "anonymous_id:a2"}],
        conflicts=1,
    ),
    S(
        "priority_order_sets_profile_id",
        [[ev("identify", 0, anon="a1", user="u1", traits={"email": "e@x.example"})]],
        [{"user_id:u1", "email:e@x.example", "anonymous_id:a1"}],
        canonical=("email:e@x.example",),
        rules={"priority": ["email", "user_id", "anonymous_id"]},
    ),
    S(
        "external_ids",
        [
            [
                ev("track", 0, anon="a1", external=[("crm", "c1")]),
                ev("identify", 5, user="u1", external=[("crm", "c1")]),
            ]
        ],
        [{"anonymous_id:a1", "ext:crm:c1", "user_id:u1"}],
    ),
    S(
        "group_id_never_glues_people",
        [[ev("group", 0, user="u1", group="g1"), ev("group", 5, user="u2", group="g1")]],
        [{"user_id:u1"}, {"user_id:u2"}, {"group_id:g1"}],
    ),
    S(
        "advertising_id_across_apps",
        [[ev("screen", 0, anon="a1", ad="x1"), ev("screen", 5, anon="a2", ad="x1")]],
        [{"anonymous_id:a1", "anonymous_id:a2", "advertising_id:x1"}],
    ),
    S(
        "anonymous_with_email_then_identify",
        [
            [ev("track", 0, anon="a1", ctx_traits={"email": "e@x.example"})],
            [ev("identify", 5, anon="a9", user="u1", traits={"email": "E@X.example"})],
        ],
        [{"anonymous_id:a1", "anonymous_id:a9", "email:e@x.example", "user_id:u1"}],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(world: World, scenario: Scenario) -> None:
    if scenario.rules:
        rules_doc = orjson.dumps(scenario.rules).decode()
        store.write_setting(world.ch, store.RULES_KEY, rules_doc, datetime.now(UTC))
    for phase in scenario.phases:
        world.insert(*[world.event(type_, t, **kw) for type_, t, kw in phase])
        stitch_incremental(world.ch, datetime.now(UTC))
    expected = {frozenset(g) for g in scenario.expect}
    assert world.groups() == expected
    assert _conflict_count(world) == scenario.conflicts
    _assert_profile_ids(world, scenario)
    rerun = stitch_full(world.ch, datetime.now(UTC))
    assert rerun.mapping_rows == 0
    assert world.groups() == expected


def _conflict_count(world: World) -> int:
    sql = (
        "SELECT count() FROM identity_conflicts FINAL "
        "WHERE deleted = 0 AND startsWith(message_id, {u:String})"
    )
    return int(world.ch.query(sql, parameters={"u": world.uid}).result_rows[0][0])


def _assert_profile_ids(world: World, scenario: Scenario) -> None:
    """Every profile id derives from its highest-priority identifier (or the named canonical one)."""
    rules = rules_from_dict(scenario.rules)
    for group in scenario.expect:
        ids = [_real(world, label) for label in group]
        best = min(ids, key=rules.key)
        assert {world.profile_of(*i) for i in ids} == {profile_id_for(best)}
    for label in scenario.canonical:
        ident = _real(world, label)
        assert world.profile_of(*ident) == profile_id_for(ident)


def _real(world: World, label: str) -> Identifier:
    type_, _, value = label.rpartition(":") if label.startswith("ext:") else label.partition(":")
    if type_ == "phone":
        return Identifier(type_, value.replace("{p}", world.p))
    return Identifier(type_, world.uid + value)
