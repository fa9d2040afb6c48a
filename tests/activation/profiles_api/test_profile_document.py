# ruff: noqa: F811  (the world fixture is imported by name and then requested as a parameter)
"""The uncached profile document (profiles_api/reads.py): the same document as the query it replaced,
for every profile of a varied store (merges, a shared device, consent from events and from the trait,
memberships, computed traits), and a profile's own rows read through the by-profile projections (0016)
instead of the bloom filters on profile_id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences.membership import profile_audiences_sql
from activation.identity.identifiers import Identifier
from activation.identity.resolve import members_sql
from activation.identity.stitching import stitch_incremental
from activation.privacy.consent import consent_of, latest_sql
from activation.profiles_api import documents, reads
from tests.activation.identity.conftest import BASE, World, world  # noqa: F401

# The reference: the per-profile document query of 2026-12-01 (one UNION ALL per profile, before the
# documents were built in batches and stored), with the consent of every consent event of the profile.
_NO_TIME = "toDateTime64(0, 3, 'UTC')"
_PREVIOUS = {
    "doc_pid": f"SELECT 'i', doc_pid, '', '', '', {_NO_TIME}",
    "traits": "SELECT 't', trait, argMax(value, version), argMax(source_id, version),"
    f" toString(argMax(updated_at, version)), {_NO_TIME} FROM profile_traits WHERE profile_id = doc_pid"
    " GROUP BY trait HAVING argMax(deleted, version) = 0",
    "computed": f"SELECT 'c', name, toString(argMax(value, version)), '', '', {_NO_TIME}"
    " FROM profile_computed_traits WHERE profile_id = doc_pid"
    " GROUP BY name HAVING argMax(deleted, version) = 0",
    "built_in": "SELECT 'p', toJSONString(map('first_seen', toString(argMax(first_seen, version)),"
    " 'last_seen', toString(argMax(last_seen, version)),"
    " 'event_count', toString(argMax(event_count, version)),"
    " 'session_count', toString(argMax(session_count, version)),"
    " 'lifetime_revenue', toString(argMax(lifetime_revenue, version)),"
    f" 'is_bot', toString(argMax(is_bot, version)))), '', '', '', {_NO_TIME}"
    " FROM profiles WHERE profile_id = doc_pid HAVING count() > 0 AND argMax(deleted, version) = 0",
    "identities": f"SELECT 'm', m.1, m.2, '', '', {_NO_TIME} FROM (SELECT arrayJoin(doc_members) AS m)",
    "audiences": f"SELECT 'a', audience_id, key, name, '', since FROM ({profile_audiences_sql('doc_pid')})",
    "consent": f"SELECT 'k', prefs, '', '', '', at FROM ({latest_sql('doc_pid', 'doc_members')})",
}
_PREVIOUS_SQL = (
    f"WITH {{p:String}} AS doc_pid, ({members_sql('doc_pid')}) AS doc_members "
    + " UNION ALL ".join(f"SELECT * FROM ({sql})" for sql in _PREVIOUS.values())
)


def previous_document(ch: Client, profile_id: str) -> dict[str, Any] | None:
    rows = ch.query(_PREVIOUS_SQL, parameters={"p": profile_id}).result_rows
    by_kind: dict[str, list[tuple[Any, ...]]] = {}
    for kind, *rest in rows:
        by_kind.setdefault(kind, []).append(tuple(rest))
    if not by_kind.get("p"):
        return None
    traits = {
        name: {"value": orjson.loads(value), "source_id": source, "updated_at": updated}
        for name, value, source, updated, _ in by_kind.get("t", [])
    }
    computed: dict[str, Any] = {name: float(value) for name, value, *_ in by_kind.get("c", [])}
    builtin = orjson.loads(by_kind["p"][0][0])
    computed.update({k: builtin[k] for k in ("first_seen", "last_seen")})
    computed.update({k: int(builtin[k]) for k in ("event_count", "session_count")})
    computed.update(lifetime_revenue=float(builtin["lifetime_revenue"]), is_bot=builtin["is_bot"] == "1")
    audiences = [
        {"id": aid, "key": key, "name": name, "entered_at": since}
        for aid, key, name, _, since in sorted(by_kind.get("a", []), key=lambda r: r[1])
    ]
    document = {
        "profile_id": profile_id,
        "traits": traits,
        "computed_traits": computed,
        "identities": [
            {"type": t, "value": v} for t, v in sorted((t, v) for t, v, *_ in by_kind.get("m", []))
        ],
        "audiences": audiences,
        "consent": consent_of(*by_kind["k"][0][::4]) if by_kind.get("k") else None,
    }
    return orjson.loads(orjson.dumps(document))  # as served: times as the API writes them


def consent(world: World, t: float, prefs: dict[str, bool], **ids: str) -> dict[str, Any]:
    return {**world.event("track", t, event="Consent", **ids), "consent": orjson.dumps(prefs).decode()}


def varied_store(world: World, people: int) -> list[str]:
    rows: list[dict[str, Any]] = []
    for n in range(people):
        traits: dict[str, Any] = {"plan": f"p{n % 3}", "email": f"user{n}@example.com"}
        if n % 4 == 0:  # the consent trait: newer than the events' consent for some, older for others
            traits["consent"] = {"ads": n % 8 == 0}
        rows.append(world.event("identify", n % 7 + 3, user=f"u{n}", anon=f"a{n}", traits=traits))
        if n % 3 == 0:
            rows.append(consent(world, n % 5 + 1, {"ads": True, "email": n % 2 == 0}, anon=f"a{n}"))
        if n % 5 == 0:
            rows.append(consent(world, 6, {"sms": False}, user=f"u{n}", anon=f"b{n}"))
        if n % 6 == 0:  # a second device, merged
            rows.append(world.event("identify", 8, user=f"u{n}", anon=f"c{n}"))
        if n % 9 == 0 and n + 1 < people:  # a shared device: a{n} seen with the next person too
            rows.append(world.event("track", 9, user=f"u{n + 1}", anon=f"a{n}", event="Viewed"))
    world.insert(*rows)
    stitch_incremental(world.ch, datetime.now(UTC))
    return [world.profile_of("user_id", world.id(f"u{n}")) for n in range(people)]


_AUDIENCE_COLUMNS = [
    *("id", "key", "name", "definition", "schedule_every_s", "enabled", "deleted"),
    *("created_at", "updated_at", "version"),
]


def audiences_and_computed(ch: Client, world: World, profiles: list[str]) -> None:
    ids = [f"{world.uid}aud{k}" for k in range(3)]
    ch.insert(
        "audiences",
        [[ids[k], f"key{k}", f"Audience {k}", "{}", 0, 1, 0, BASE, BASE, 1] for k in range(3)],
        column_names=_AUDIENCE_COLUMNS,
    )
    changes = []
    for n, pid in enumerate(profiles):
        for k in range(3):
            if (n + k) % 3 == 0:
                changes.append([ids[k], pid, "entered", BASE.replace(minute=k)])
            if (n + k) % 6 == 0:
                changes.append([ids[k], pid, "exited", BASE.replace(minute=k + 10)])
    ch.insert(
        "audience_membership_changes", changes, column_names=["audience_id", "profile_id", "change", "at"]
    )
    computed = [[pid, "orders", float(n), BASE, 1, 0] for n, pid in enumerate(profiles) if n % 2]
    ch.insert(
        "profile_computed_traits",
        computed,
        column_names=["profile_id", "name", "value", "computed_at", "version", "deleted"],
    )


def test_the_document_is_the_previous_querys_for_every_profile_of_a_varied_store(
    ch: Client, world: World
) -> None:
    profiles = varied_store(world, 72)
    audiences_and_computed(ch, world, profiles)
    assert len(set(profiles)) > 60 and all(profiles)
    kinds = {"consent": 0, "audiences": 0, "computed": 0, "identities>3": 0}
    for pid in set(profiles):
        document = reads.profile_document(ch, pid)
        assert document is not None
        assert document == previous_document(ch, pid), pid
        kinds["consent"] += document["consent"] is not None
        kinds["audiences"] += bool(document["audiences"])
        kinds["computed"] += "orders" in document["computed_traits"]
        kinds["identities>3"] += len(document["identities"]) > 3
    assert all(count >= 5 for count in kinds.values()), kinds  # the store exercises every branch


def test_a_profiles_identifiers_and_memberships_are_read_through_the_by_profile_projections(
    ch: Client, world: World
) -> None:
    profiles = varied_store(world, 4)
    audiences_and_computed(ch, world, profiles)
    for sql in (
        "SELECT identifier_type, identifier_value FROM identity_map WHERE profile_id IN [{p:String}]",
        "SELECT audience_id, max(at) FROM audience_membership_changes WHERE profile_id IN [{p:String}]"
        " GROUP BY audience_id",
    ):
        explain = ch.query(f"EXPLAIN projections = 1 {sql}", parameters={"p": profiles[0]}).result_rows
        plan = "\n".join(r[0] for r in explain)
        assert "by_profile" in plan, plan


def test_documents_built_together_and_stored_are_the_reference_for_every_profile(
    ch: Client, world: World
) -> None:
    profiles = sorted(set(varied_store(world, 72)))
    audiences_and_computed(ch, world, profiles)
    built = documents.build(ch, [*profiles, f"{world.uid}-no-such-profile"])
    assert sorted(built) == profiles  # one query for all of them; an unknown id has no document
    names = documents.audience_names(ch)
    documents.write(ch, built, version=1, generation=7)
    for pid in profiles:
        reference = previous_document(ch, pid)
        assert documents.served(built[pid], names) == reference, pid
        for listed in built[pid]["identities"]:
            identifier = Identifier(listed["type"], listed["value"])
            stored = documents.stored(ch, identifier, 7)
            assert stored is not None and documents.served(stored, names) == reference, identifier
    some = Identifier(**built[profiles[0]]["identities"][0])
    assert documents.stored(ch, some, 8) is None  # built under another cache generation: not served


def test_a_stored_document_is_not_served_for_an_identifier_it_no_longer_lists(
    ch: Client, world: World
) -> None:
    profiles = sorted(set(varied_store(world, 3)))
    built = documents.build(ch, profiles)
    documents.write(ch, built, version=1, generation=0)
    moved = Identifier(**built[profiles[0]]["identities"][0])
    assert documents.stored(ch, moved, 0) is not None
    # the identifier now belongs to the second profile's document only: its row is rewritten with it
    second = {**built[profiles[1]], "identities": [*built[profiles[1]]["identities"], moved._asdict()]}
    documents.write(ch, {profiles[1]: second}, version=2, generation=0)
    assert documents.stored(ch, moved, 0)["profile_id"] == profiles[1]  # type: ignore[index]
    # it left every profile (a deletion): an empty row, not served
    documents.write(ch, {}, version=3, generation=0, gone=[moved])
    assert documents.stored(ch, moved, 0) is None
    # an older write arriving late does not win
    documents.write(ch, built, version=2, generation=0)
    assert documents.stored(ch, moved, 0) is None
