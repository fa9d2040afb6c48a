"""A deletion whose destination step fails stays retryable: status `failed` with the destination's
reason, the members it must still lose kept sealed (no readable identifier in any table), and
POST /admin/v1/privacy/deletions/{id}/retry re-runs only that step to `completed`."""

# ruff: noqa: F811  (the sync fixtures are imported by name and then requested as parameters)
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from activation.admin.auth import TokenStore
from activation.db import Database
from activation.identity.identifiers import Identifier
from activation.privacy import requests
from activation.privacy.deletion import privacy_delete
from activation.privacy.person import Person
from activation.privacy.requests import PrivacyRequest
from activation.privacy.routes import routes
from activation.services import of
from activation.sync.engine import sync_destination
from tests.activation.privacy.conftest import wiring
from tests.activation.privacy.traces import table_traces
from tests.activation.sync.conftest import (  # noqa: F401
    Fakes,
    World,
    ctx,
    fakes,
    sleeps,
    world,
)
from tests.activation.sync.test_engine import held
from tests.services import changed


@pytest.fixture
def pctx(ctx: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**ctx, "privacy": wiring(tmp_path)}


@pytest.fixture
async def admin(pctx: dict[str, Any], ch: Client) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """The privacy routes in a tiny app (admin token); enqueued job ids are recorded."""
    tokens = TokenStore(Database(ch))
    _, secret = await tokens.create("privacy-retry", ["admin"])
    queued: list[str] = []

    async def enqueue(name: str, *args: Any, job_id: str) -> bool:
        queued.append(job_id)
        return True

    services = changed(pctx, enqueue=enqueue)["services"]
    app = Starlette(routes=routes(services, tokens, pctx["privacy"]))
    headers = {"Authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m.test", headers=headers) as client:
        yield client, queued


async def _deletion(ch: Client, email: str) -> str:
    person = Person(frozenset(), frozenset({Identifier("email", email)}))
    request = PrivacyRequest(
        requests.new_id("del"), "deletion", "delete", "pending", requests.person_json(person), (), "tok_test",
        datetime.now(UTC),
    )  # fmt: skip
    await requests.save(Database(ch), request)
    return request.id


async def test_a_failed_destination_step_is_kept_sealed_and_retried_to_completed(
    pctx: dict[str, Any], world: World, fakes: Fakes, ch: Client, admin: tuple[httpx.AsyncClient, list[str]]
) -> None:
    client, queued = admin
    world.people([1, 2])
    audience_id, key = world.audience()
    world.change(audience_id, [world.pid(1), world.pid(2)], "entered")
    hubspot = await world.destination("hubspot", fakes.setups()["hubspot"])
    assert (await sync_destination(pctx, hubspot, audience_id))["status"] == "succeeded"
    email = world.email(1)
    request_id = await _deletion(ch, email)
    fakes.hubspot.inject("error500", times=None, path="gdpr-delete")  # the erasure API is down

    assert await privacy_delete(pctx, request_id) == "failed"
    failed = (await client.get(f"/admin/v1/privacy/deletions/{request_id}")).json()
    assert failed["status"] == "failed" and "retry" in failed["error"], failed
    [outcome] = [o for o in failed["receipt"]["destinations"] if o["destination_id"] == hubspot]
    assert outcome["status"] == "failed" and "erasure call failed" in outcome["detail"], outcome
    assert held(fakes, world, "hubspot", key) == {2}  # the list removal went through
    assert fakes.hubspot.gdpr_deleted == []
    values = [email, f"u_{world.ns}_1", world.pid(1)]
    assert table_traces(ch, values) == []  # the person's tables are forgotten; the retry state is sealed
    stored = await requests.get(of(pctx).db, request_id, "deletion")
    assert stored is not None and stored.identifiers.startswith("v1.")

    fakes.hubspot.faults.clear()
    retried = await client.post(f"/admin/v1/privacy/deletions/{request_id}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "pending", retried.text
    assert queued and queued[-1].startswith(f"privacy_delete:{request_id}:retry:")
    assert await privacy_delete(pctx, request_id) == "completed"

    done = (await client.get(f"/admin/v1/privacy/deletions/{request_id}")).json()
    assert done["status"] == "completed" and done["receipt"]["retries"] == 1, done
    [outcome] = [o for o in done["receipt"]["destinations"] if o["destination_id"] == hubspot]
    assert outcome["status"] == "erased", outcome
    assert fakes.hubspot.gdpr_deleted == [email] and held(fakes, world, "hubspot", key) == {2}
    assert done["receipt"]["rows_removed"]["identity_map"] == 2  # the first run's rows are still counted
    row = ch.query(
        "SELECT groupArray(identifiers) FROM privacy_requests WHERE id = {i:String}",
        parameters={"i": request_id},
    ).result_rows[0][0]
    assert row == [""]  # every older version (sealed state included) deleted
    again = await client.post(f"/admin/v1/privacy/deletions/{request_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_retryable"
    assert orjson.dumps(done).find(email.encode()) == -1
