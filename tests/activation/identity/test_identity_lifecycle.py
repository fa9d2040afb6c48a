"""Against real ClickHouse: idempotence, retroactive history, traits, unmerge, imports and proposals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from activation.identity import store
from activation.identity.computed import ComputedTrait
from activation.identity.identifiers import Identifier, normalise_email, normalise_phone
from activation.identity.links import IDS_SQL, phone_params
from activation.identity.lookup import lookup
from activation.identity.proposals import decide, import_records, list_proposals
from activation.identity.records import parse_records
from activation.identity.stitching import stitch_full, stitch_incremental
from activation.identity.unmerge import unmerge
from activation.profiles_api import history, reads
from tests.activation.identity.conftest import World


def now() -> datetime:
    return datetime.now(UTC)


def mapping_dump(world: World) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT identifier_type, identifier_value, profile_id, deleted FROM identity_map FINAL "
        "ORDER BY identifier_type, identifier_value"
    )
    return [tuple(r) for r in world.ch.query(sql).result_rows]


def test_rerun_and_killed_retry_give_byte_identical_mappings(world: World) -> None:
    world.insert(
        world.event("track", 0, anon="a1"),
        world.event("identify", 5, anon="a1", user="u1", device="d1"),
        world.event("identify", 9, anon="a2", user="u2", device="d1"),
        world.event("alias", 12, prev="a3", user="u2"),
    )
    stitch_incremental(world.ch, now())
    before = mapping_dump(world)
    assert stitch_incremental(world.ch, now()).mapping_rows == 0
    # a killed run never saved its watermark: the retry re-reads everything and writes nothing new
    world.ch.command("TRUNCATE TABLE identity_settings")
    assert stitch_incremental(world.ch, now()).mapping_rows == 0
    assert stitch_full(world.ch, now()).mapping_rows == 0
    assert mapping_dump(world) == before


def test_history_belongs_to_the_profile_once_linked(world: World) -> None:
    world.insert(
        world.event("page", 0, anon="a1"),
        world.event("track", 60, anon="a1", event="Added"),
        world.event("track", 7200, anon="a1", event="Order Completed", properties={"revenue": 20}),
    )
    stitch_incremental(world.ch, now())
    world.insert(
        world.event("identify", 7300, anon="a1", user="u1", traits={"plan": "free"}),
        world.event("track", 7400, anon="a2", user="u1", event="Order Completed", properties={"total": 5}),
    )
    stitch_incremental(world.ch, now())
    profile = world.profile_of("user_id", world.id("u1"))
    doc = reads.profile_document(world.ch, profile)
    computed = doc["computed_traits"]
    assert computed["event_count"] == 5 and computed["session_count"] == 2
    assert computed["lifetime_revenue"] == 25.0
    assert computed["first_seen"].startswith("2026-01-01 00:00:00")
    sql = "SELECT count() FROM profile_events WHERE profile_id = {p:String}"
    assert world.ch.query(sql, parameters={"p": profile}).result_rows[0][0] == 5
    events, cursor = history.profile_events(world.ch, profile, "", 3)
    rest, end = history.profile_events(world.ch, profile, cursor or "", 3)
    assert [e["timestamp"] for e in events + rest] == sorted(
        (e["timestamp"] for e in events + rest), reverse=True
    )
    assert len(events + rest) == 5 and end is None


def test_newest_trait_wins_with_source_and_time(world: World) -> None:
    world.insert(
        world.event("identify", 10, user="u1", traits={"plan": "pro", "name": "Ann"}, source="web"),
        world.event("identify", 5, user="u1", traits={"plan": "free"}, source="crm"),
        world.event("track", 20, user="u1", ctx_traits={"name": "Ann B"}, source="ios"),
    )
    stitch_incremental(world.ch, now())
    traits = reads.profile_document(world.ch, world.profile_of("user_id", world.id("u1")))["traits"]
    assert traits["plan"] == {"value": "pro", "source_id": "web", "updated_at": "2026-01-01 00:00:10.000"}
    assert traits["name"]["value"] == "Ann B" and traits["name"]["source_id"] == "ios"


def test_user_defined_computed_trait(world: World) -> None:
    store.write_definition(world.ch, ComputedTrait("orders", "count", "Order Completed"), now())
    store.write_definition(world.ch, ComputedTrait("spend", "sum", "Order Completed", "revenue"), now())
    world.insert(
        *[
            world.event("track", i, user="u1", event="Order Completed", properties={"revenue": i})
            for i in (1, 2, 3)
        ],
        world.event("track", 4, user="u1", event="Viewed"),
    )
    stitch_incremental(world.ch, now())
    computed = reads.profile_document(world.ch, world.profile_of("user_id", world.id("u1")))[
        "computed_traits"
    ]
    assert computed["orders"] == 3.0 and computed["spend"] == 6.0


def test_unmerge_by_ledger_entry_splits_and_stays_split(world: World) -> None:
    world.insert(
        world.event("identify", 0, anon="a1", user="u1", traits={"plan": "pro"}),
        world.event("track", 5, anon="a2", ctx_traits={"email": "x@y.example", "colour": "red"}),
        world.event("identify", 9, anon="a2", user="u1"),
    )
    stitch_incremental(world.ch, now())
    profile = world.profile_of("user_id", world.id("u1"))
    ledger = history.profile_identities(world.ch, profile)["merges"]
    wrong = next(m for m in ledger if m["a"]["type"] == "user_id" and m["b"]["value"] == world.id("a2"))
    result = unmerge(world.ch, profile, {"ledger_id": wrong["ledger_id"], "reason": "shared laptop"}, now())
    assert len(result["profiles"]) == 2
    assert world.groups() == {
        frozenset({"user_id:u1", "anonymous_id:a1"}),
        frozenset({"anonymous_id:a2", "email:x@y.example"}),
    }
    other = world.profile_of("anonymous_id", world.id("a2"))
    assert "colour" in reads.profile_document(world.ch, other)["traits"]
    assert "colour" not in reads.profile_document(world.ch, profile)["traits"]
    assert reads.profile_document(world.ch, profile)["computed_traits"]["event_count"] == 2  # user_id wins
    world.insert(world.event("track", 20, anon="a2", user="u1"))
    stitch_incremental(world.ch, now())
    stitch_full(world.ch, now())
    assert world.profile_of("anonymous_id", world.id("a2")) == other


def test_unmerge_by_identifiers(world: World) -> None:
    world.insert(
        world.event("identify", 0, anon="a1", user="u1"), world.event("identify", 5, anon="a2", user="u1")
    )
    stitch_incremental(world.ch, now())
    profile = world.profile_of("user_id", world.id("u1"))
    unmerge(world.ch, profile, {"identifiers": [{"type": "anonymous_id", "value": world.id("a2")}]}, now())
    assert world.groups() == {frozenset({"user_id:u1", "anonymous_id:a1"}), frozenset({"anonymous_id:a2"})}


def test_sql_and_python_normalisation_agree(world: World) -> None:
    emails = ["  Foo@Example.COM ", "nope", "@x", "a@b", "ÉLAN@Exámple.com\t"]
    phones = ["+1 (415) 555-0100", "0044 20 7946 0958", "4155550100", "+0123456789", "07700 900123"]
    rows = [
        world.event("identify", i, user=f"n{i}", traits={"email": "!" + e, "phone": p})
        for i, (e, p) in enumerate(zip(emails, phones, strict=True))
    ]
    world.insert(*rows)
    sql = f"SELECT user_id, {IDS_SQL} FROM events WHERE startsWith(user_id, {{u:String}}) ORDER BY user_id"
    for region in ("", "GB", "US", "IT"):
        params = {"u": world.uid, **phone_params(region)}
        got = world.ch.query(sql, parameters=params).result_rows
        for (_, ids), email, phone in zip(got, emails, phones, strict=True):
            found = dict(ids)
            assert found.get("email", "") == normalise_email(email)
            assert found.get("phone", "") == normalise_phone(phone, region), (region, phone)


def test_import_stitches_hard_ids_and_proposes_fuzzy_matches(world: World) -> None:
    world.insert(
        world.event(
            "identify",
            0,
            user="u1",
            traits={"email": "jon.smith@acme.example", "name": "Jon Smith", "company": "Acme"},
        )
    )
    stitch_incremental(world.ch, now())
    profile = world.profile_of("user_id", world.id("u1"))
    body = "\n".join(
        orjson.dumps(r).decode()
        for r in [
            {"email": world.email("jon.smith@acme.example"), "plan": "gold"},
            {"name": "John Smith", "email": "john.smith@acme.example", "company": "Acme Inc"},
            {"name": "Jonathan Smith", "company": "ACME"},
            {"name": "Zed Q", "email": "zed@else.example"},
        ]
    ).encode()
    records, rejected = parse_records(body, "application/x-ndjson")
    summary = import_records(world.ch, records, "b1", now())
    assert summary["matched"] == 1 and not rejected
    assert reads.profile_document(world.ch, profile)["traits"]["plan"]["value"] == "gold"
    open_ = [p for p in list_proposals(world.ch, "open", "", 100) if p["candidate_profile_id"] == profile]
    assert len(open_) == 2
    accepted = decide(world.ch, open_[0]["proposal_id"], True, now())
    assert accepted["status"] == "accepted"
    assert world.profile_of("record", open_[0]["record_id"]) == profile
    decide(world.ch, open_[1]["proposal_id"], False, now())
    assert {p["proposal_id"] for p in list_proposals(world.ch, "rejected", "", 100)} == {
        open_[1]["proposal_id"]
    }


def test_auto_apply_above_threshold(world: World) -> None:
    rules = {"fuzzy_propose_threshold": 60, "fuzzy_auto_threshold": 85}
    store.write_setting(world.ch, store.RULES_KEY, orjson.dumps(rules).decode(), now())
    traits = {"email": "ann.lee@corp.example", "name": "Ann Lee", "phone": "+1 415 {p}"}
    world.insert(world.event("identify", 0, user="u1", traits=traits))
    stitch_incremental(world.ch, now())
    profile = world.profile_of("user_id", world.id("u1"))
    records, _ = parse_records(f"name,phone\nAnn Lee,+1 415 {world.p}\n".encode(), "text/csv")
    assert import_records(world.ch, records, "b2", now())["matched"] == 1
    records, _ = parse_records(f"name,email\nAnn  Lee,{world.uid}ann.lee@corp.exampel\n".encode(), "text/csv")
    summary = import_records(world.ch, records, "b3", now())
    assert summary["auto_applied"] == 1
    assert world.profile_of("record", records[0].record_id) == profile
    assert [p["status"] for p in list_proposals(world.ch, "", "", 100)] == ["auto"]


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _is_bot(world: World, user: str) -> bool:
    doc = reads.profile_document(world.ch, world.profile_of("user_id", world.id(user)))
    return bool(doc["computed_traits"]["is_bot"])


def test_one_backend_event_never_makes_a_browser_customer_a_bot(world: World) -> None:
    world.insert(
        *[world.event("page", i, user="shopper", anon="a-shop", ua=BROWSER) for i in range(3)],
        # a server-side call flagged from its HTTP client (curl, an SDK): no context.userAgent
        world.event("track", 10, user="shopper", event="Order Completed", is_bot=1),
        *[world.event("page", i, user="crawler", ua=CRAWLER, is_bot=1) for i in range(3)],
        world.event("page", 4, user="crawler", ua=BROWSER),
        world.event("track", 5, user="server-only", event="Synced", is_bot=1),
        world.event("page", 6, user="half", ua=CRAWLER, is_bot=1),
        world.event("page", 7, user="half", ua=BROWSER),
    )
    stitch_incremental(world.ch, now())
    assert not _is_bot(world, "shopper")
    assert _is_bot(world, "crawler")  # most of its browser events are a crawler's
    assert not _is_bot(world, "server-only")  # no event with a user agent of its own
    assert not _is_bot(world, "half")  # a bot only by a majority
    # more backend events later do not change the rule's answer either
    world.insert(*[world.event("track", 20 + i, user="shopper", event="Refund", is_bot=1) for i in range(5)])
    stitch_incremental(world.ch, now())
    assert not _is_bot(world, "shopper")


class _Watched:
    """A client that, after every write, reads the profile of each watched identifier the way the
    Profile API does and keeps what it saw."""

    def __init__(self, ch: Any, watched: list[Identifier]) -> None:
        self.ch, self.watched, self.seen = ch, watched, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ch, name)

    def _after_write(self) -> None:
        for identifier in self.watched:
            profile_id = lookup(self.ch, identifier)
            if profile_id:
                self.seen.append(reads.profile_document(self.ch, profile_id)["traits"])

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        result = self.ch.insert(*args, **kwargs)
        self._after_write()
        return result

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        result = self.ch.command(sql, *args, **kwargs)
        if sql.lstrip().upper().startswith("INSERT"):
            self._after_write()
        return result


def test_the_profile_api_never_sees_a_half_written_profile(world: World) -> None:
    """A merge moves identifiers to a new profile id: between the mapping and the traits writes,
    a reader must get the old complete profile (or none yet), never one with `traits: {}`."""
    world.insert(world.event("identify", 0, anon="a1", traits={"plan": "trial"}))
    stitch_incremental(world.ch, now())
    watched = [Identifier("anonymous_id", world.id("a1")), Identifier("user_id", world.id("u1"))]
    client = _Watched(world.ch, watched)
    world.insert(world.event("identify", 5, anon="a1", user="u1", traits={"plan": "pro"}))
    stitch_incremental(client, now())  # type: ignore[arg-type]
    assert client.seen, "the watcher never read a profile"
    assert all(traits for traits in client.seen), client.seen
    final = reads.profile_document(world.ch, lookup(world.ch, watched[1]))
    assert final["traits"]["plan"]["value"] == "pro"
