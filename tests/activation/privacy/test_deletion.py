"""The deletion job: the whole stitched person leaves every table and Redis; others stay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from clickhouse_connect.driver.client import Client

from activation.db import Database
from activation.identity import store as identity_store
from activation.identity.identifiers import Identifier
from activation.privacy import requests
from activation.privacy.deletion import privacy_delete
from activation.privacy.person import Person
from activation.privacy.requests import PrivacyRequest
from activation.privacy.suppressions import is_suppressed
from tests.activation.privacy.conftest import KNOWN_TABLES, Seeded, person_values, seed, seed_redis
from tests.activation.privacy.traces import redis_traces, table_traces


async def _request(ch: Client, named: list[Identifier], mode: str = "delete") -> str:
    person = Person(frozenset(), frozenset(named))
    request = PrivacyRequest(
        requests.new_id("del"), "deletion", mode, "pending", requests.person_json(person), (), "tok_test",
        datetime.now(UTC),
    )  # fmt: skip
    await requests.save(Database(ch), request)
    return request.id


def _left(ch: Client, p: Seeded) -> list[tuple[str, str, str]]:
    return table_traces(ch, [*p.values(), p.absorbed_profile_id], KNOWN_TABLES)


async def test_deleting_by_email_erases_the_whole_person_everywhere(
    ch: Client, redis: aioredis.Redis, ctx: dict[str, Any]
) -> None:
    ann, bob = person_values("ann"), person_values("bob")
    for p in (ann, bob):
        seed(ch, p)
        await seed_redis(redis, p)
    assert {t for t, _, _ in _left(ch, ann)} >= {"events", "identity_map", "sync_runs", "profile_traits"}
    request_id = await _request(ch, [Identifier("email", ann.email)])

    assert await privacy_delete(ctx, request_id) == "completed"

    assert _left(ch, ann) == []
    assert await redis_traces(redis, ann.values()) == []
    assert {t for t, _, _ in _left(ch, bob)} >= {"events", "identity_map", "sync_runs", "profile_traits"}
    assert await redis_traces(redis, [bob.email]) != []
    assert await redis.lrange("magpie:jobs:failed", 0, -1) != []  # only ann's entry went
    done = await requests.get(Database(ch), request_id, "deletion")
    assert done is not None and done.status == "completed" and done.identifiers == ""
    receipt = orjson.loads(done.receipt)
    assert receipt["rows_removed"]["events"] == 4  # 3 under her ids + 1 quoting her address
    assert receipt["rows_removed"]["identity_map"] == 5 and receipt["rows_removed"]["rejected_events"] == 1
    assert receipt["profiles_covered"] == 2  # hers and the one merged into it
    assert {c["type"] for c in receipt["identifiers_covered"]} == {
        "email",
        "user_id",
        "anonymous_id",
        "device_id",
        "ext:hubspot_contact_id",
    }
    assert all(len(c["hash"]) == 64 for c in receipt["identifiers_covered"])
    assert ann.email not in done.receipt
    removed = receipt["rows_removed"]
    assert (removed["crm_trait_state"], removed["crm_objects"], removed["crm_pull_runs"]) == (1, 1, 1)
    assert removed["event_dead_letters"] == 2 and removed["profile_event_states"] >= 2
    targets = ch.query("SELECT targets FROM crm_objects WHERE object_id = {o:String}",
                       parameters={"o": f"deal-{ann.run_id}"}).result_rows  # fmt: skip
    assert targets == [(["ext:hubspot_company_id:9"],)]  # the deal stays, without her label
    assert _mutation_traces(ch, [*ann.values(), ann.absorbed_profile_id]) == []


def _mutation_traces(ch: Client, values: list[str]) -> list[str]:
    """Mutation texts ClickHouse keeps (system.mutations) that quote one of `values`."""
    rows = ch.query(
        "SELECT table, command FROM system.mutations WHERE database = currentDatabase()"
        " AND multiSearchAnyCaseInsensitive(command, {v:Array(String)})",
        parameters={"v": values},
    ).result_rows
    return [f"{t}: {c[:200]}" for t, c in rows]


async def test_a_run_interrupted_after_the_graph_was_erased_still_finds_every_event(
    ch: Client, redis: aioredis.Redis, ctx: dict[str, Any]
) -> None:
    ann = person_values("cut")
    seed(ch, ann)
    request_id = await _request(ch, [Identifier("email", ann.email)], mode="delete_and_suppress")
    original = ctx["privacy"]
    crash = RuntimeError("worker killed")

    def dies(ch_: Client, person: Person) -> dict[str, int]:
        raise crash

    from dataclasses import replace

    from activation.privacy.registry import ForgetPath

    graph_first = (original.paths[0], ForgetPath(("events",), dies))
    with pytest.raises(RuntimeError):
        await privacy_delete({**ctx, "privacy": replace(original, paths=graph_first)}, request_id)
    assert identity_store.read_mapping(ch, [Identifier("email", ann.email)]) == {}  # the graph is gone
    failed = await requests.get(Database(ch), request_id, "deletion")
    assert failed is not None and failed.status == "failed" and ann.anonymous_id in failed.identifiers

    assert await privacy_delete(ctx, request_id) == "completed"
    assert _left(ch, ann) == []
    assert await is_suppressed(ctx["services"], Identifier("anonymous_id", ann.anonymous_id))
    assert await privacy_delete(ctx, request_id) == "completed"  # a third run is a no-op
