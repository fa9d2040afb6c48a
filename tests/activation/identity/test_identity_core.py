"""Pure core: graph order independence, rules, normalisation, fuzzy scores, record parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from activation.identity.computed import DefinitionError, definition_from_dict
from activation.identity.fuzzy import person_from_traits, score
from activation.identity.graph import Link, Split, stitch
from activation.identity.identifiers import Identifier, normalise_email, normalise_phone, parse_identifier
from activation.identity.records import parse_records
from activation.identity.rules import Rules, RulesError, rules_from_dict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def link(t: int, *labels: str, kind: str = "identify") -> Link:
    ids = tuple(sorted(Identifier(*label.split(":", 1)) for label in labels))
    return Link(ids, T0 + timedelta(seconds=t), f"m{t:03d}", "s", kind)


def random_links(rng: random.Random, n: int) -> list[Link]:
    out = []
    for t in range(n):
        labels = {f"anonymous_id:a{rng.randrange(40)}"}
        if rng.random() < 0.5:
            labels.add(f"user_id:u{rng.randrange(15)}")
        if rng.random() < 0.3:
            labels.add(f"device_id:d{rng.randrange(10)}")
        if rng.random() < 0.05:
            labels.add("user_id:null")
        out.append(link(t, *labels))
    return out


def test_result_depends_only_on_the_set_of_links() -> None:
    rng = random.Random(7)
    links = random_links(rng, 200)
    rules = rules_from_dict({"limits": {"device_id": 2}})
    splits = [Split("s1", {Identifier("anonymous_id", "a1"): 0, Identifier("anonymous_id", "a2"): 1})]
    first = stitch(links, rules, splits)
    for _ in range(5):
        rng.shuffle(links)
        again = stitch(links, rules, splits)
        assert again.mapping == first.mapping
        assert again.merges == first.merges
        assert again.conflicts == first.conflicts
    assert Identifier("user_id", "null") not in first.mapping
    per_profile: dict[str, int] = {}
    for identifier, profile in first.mapping.items():
        if identifier.type == "user_id":
            per_profile[profile] = per_profile.get(profile, 0) + 1
    assert max(per_profile.values()) == 1


def test_split_keeps_identifiers_apart_and_records_the_conflict() -> None:
    links = [link(1, "anonymous_id:a1", "user_id:u1"), link(2, "anonymous_id:a2", "user_id:u1")]
    split = Split("x", {Identifier("anonymous_id", "a2"): 0, Identifier("user_id", "u1"): 1})
    result = stitch(links, Rules(), [split])
    assert result.mapping[Identifier("anonymous_id", "a2")] != result.mapping[Identifier("user_id", "u1")]
    assert [c.evidence.rule for c in result.conflicts] == ["split:x"]


def test_ledger_names_profiles_event_and_rule() -> None:
    result = stitch(
        [link(1, "anonymous_id:a1"), link(2, "anonymous_id:a1", "user_id:u1", kind="identify")], Rules()
    )
    (merge,) = result.merges
    assert merge.evidence.message_id == "m002" and merge.evidence.rule == "identify"
    assert merge.profile_id == result.mapping[Identifier("user_id", "u1")]
    assert len(set(merge.merged)) == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  Foo@Example.COM ", "foo@example.com"), ("nope", ""), ("@x", ""), ("a@b", "a@b")],
)
def test_normalise_email(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-0100", "+14155550100"),
        ("0044 20 7946 0958", "+442079460958"),
        ("4155550100", ""),
        ("+0123456789", ""),
        ("+1234", ""),
    ],
)
def test_normalise_phone(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("07700 900123", "GB", "+447700900123"),
        ("7700 900123", "GB", "+447700900123"),
        ("+33 1 23 45 67 89", "GB", "+33123456789"),
        ("0033 1 23 45 67 89", "GB", "+33123456789"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("1-415-555-0100", "US", "+14155550100"),
        ("06 1234 5678", "IT", "+390612345678"),
        ("07700 900123", "", ""),
        ("call me", "GB", ""),
    ],
)
def test_national_numbers_take_the_default_region(raw: str, region: str, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


def test_default_phone_region_is_a_rules_field() -> None:
    assert rules_from_dict({"default_phone_region": "gb"}).default_phone_region == "GB"
    assert rules_from_dict({}).to_dict()["default_phone_region"] == ""
    with pytest.raises(RulesError) as info:
        rules_from_dict({"default_phone_region": "Narnia", "alias_overrides_limits": "yes"})
    assert set(info.value.fields) == {"default_phone_region", "alias_overrides_limits"}


def test_parse_identifier() -> None:
    assert parse_identifier("email: A@B.com") == Identifier("email", "a@b.com")
    assert parse_identifier("ext:crm:42") == Identifier("ext:crm", "42")
    assert parse_identifier("bogus:1") is None
    assert parse_identifier("user_id:") is None


def test_blocked_values() -> None:
    rules = Rules()
    for value in (
        "NULL",
        " undefined ",
        "   ",
        "0000",
        "00000000-0000-0000-0000-000000000000",
        "[object Object]",
    ):
        assert rules.is_blocked(Identifier("user_id", value)), value
    assert not rules.is_blocked(Identifier("user_id", "u-0001"))


def test_rules_validation_names_each_bad_field() -> None:
    with pytest.raises(RulesError) as info:
        rules_from_dict({"limits": {"user_id": -1}, "priority": ["bogus"], "colour": 1})
    assert set(info.value.fields) == {"limits", "priority", "colour"}
    assert rules_from_dict({"limits": {"email": 2}}).limit("user_id") == 1


def test_computed_definition_validation() -> None:
    assert definition_from_dict({"name": "orders_30d", "aggregate": "count", "event": "Order Completed"})
    with pytest.raises(DefinitionError) as info:
        definition_from_dict({"name": "Bad Name", "aggregate": "median", "event": "", "window_days": -1})
    assert set(info.value.fields) == {"name", "aggregate", "event", "window_days"}


def test_fuzzy_scores() -> None:
    a = person_from_traits({"first_name": "Jon", "last_name": "Smith", "email": "jon.smith@acme.com"})
    b = person_from_traits({"name": "John Smith", "email": "john.smith@acme.com", "company": "Acme Inc."})
    c = person_from_traits({"name": "Mary Jones", "email": "mary@other.org"})
    assert score(a, b)[0] > 90
    assert score(a, c)[0] < 50
    name_only = score(person_from_traits({"name": "A B"}), person_from_traits({"name": "A B"}))
    assert name_only[0] == 75.0


def test_parse_records_csv_and_jsonl() -> None:
    csv_body = b"email,phone,name,ext:crm\nA@B.com,+44 20 7946 0958,Ann,7\n,,,\n"
    records, rejected = parse_records(csv_body, "text/csv")
    assert [r.index for r in rejected] == [1]
    (record,) = records
    assert Identifier("email", "a@b.com") in record.ids and Identifier("ext:crm", "7") in record.ids
    assert record.traits["name"] == "Ann"
    jsonl = b'{"user_id": "u1", "traits": {"plan": "pro"}}\nnot json\n'
    records, rejected = parse_records(jsonl, "application/x-ndjson")
    assert records[0].traits == {"plan": "pro"} and [r.reason for r in rejected] == ["not an object"]
