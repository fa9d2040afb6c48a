"""A canary secret planted as a credential of every destination type never shows up anywhere:
not in API responses, logs, job payloads, Redis, or any ClickHouse table — including on error paths."""

from __future__ import annotations

import base64
import logging
import secrets
import urllib.parse
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from activation.sync import engine
from activation.sync.engine import sync_destination
from tests.activation.sync.conftest import Api, Fakes, World

BASE = "/admin/v1/destinations"


def canary_credentials(fakes: Fakes, canary: str) -> dict[str, dict[str, str]]:
    """Credentials per type where the canary is the live secret (the fakes are told to accept it)."""
    for fake in (fakes.google, fakes.meta, fakes.hubspot):
        fake.tokens.add(canary)
    fakes.mailchimp.api_key = canary + "-us6"
    fakes.webhook.key = canary.encode()
    fakes.webhook.secret = "whsec_" + base64.b64encode(canary.encode()).decode()
    setups = fakes.setups()
    return {
        "google_ads": {**setups["google_ads"][1], "access_token": canary, "client_secret": canary},
        "meta": {"access_token": canary, "app_secret": canary},
        "mailchimp": {"api_key": canary + "-us6"},
        "hubspot": {**setups["hubspot"][1], "access_token": canary},
        "webhook": {"secret": fakes.webhook.secret},
    }


async def _exercise_api(
    api: Api, fakes: Fakes, creds: dict[str, dict[str, str]]
) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    ids: list[str] = []
    for kind, (config, _) in fakes.setups().items():
        created = await api.call(
            "POST", BASE, json={"type": kind, "name": kind, "config": config, "credentials": creds[kind]}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
        texts.append(created.text)
        texts.append((await api.call("GET", f"{BASE}/{ids[-1]}")).text)
        tested = await api.call("POST", f"{BASE}/{ids[-1]}/test")
        assert tested.json()["ok"] is True, (kind, tested.text)
        texts.append(tested.text)
    texts.append((await api.call("GET", f"{BASE}?limit=1000")).text)
    bad = await api.call(
        "POST",
        BASE,
        json={"type": "webhook", "name": "x", "config": {}, "credentials": {"secret": "whsec_" + "A" * 3}},
    )
    texts.append(bad.text)
    for fake in (fakes.google, fakes.meta, fakes.hubspot):
        fake.tokens.clear()
    fakes.mailchimp.api_key = "rotated-us6"
    fakes.webhook.inject("auth_expired", times=1)
    for dest_id in ids:
        failed = await api.call("POST", f"{BASE}/{dest_id}/test")
        assert failed.json()["ok"] is False, failed.text
        texts.append(failed.text)
    return texts, ids


def _redis_dump(values: list[Any]) -> str:
    return "\n".join(repr(v) for v in values)


async def _redis_text(redis: Any) -> str:
    found: list[Any] = []
    async for key in redis.scan_iter():
        found.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            found.append(await redis.get(key))
        elif kind == "hash":
            found.append(await redis.hgetall(key))
        elif kind == "list":
            found.append(await redis.lrange(key, 0, -1))
        elif kind in ("set", "zset"):
            found.append(await (redis.smembers(key) if kind == "set" else redis.zrange(key, 0, -1)))
    return _redis_dump(found)


def _clickhouse_text(ch: Client, canary: str) -> list[str]:
    tables = ch.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View'"
    ).result_rows
    leaks = []
    for (table,) in tables:
        dump = ch.raw_query(f"SELECT * FROM {table}", fmt="TabSeparated")
        if canary.encode() in dump:
            leaks.append(table)
    return leaks


async def test_a_canary_credential_never_leaks(
    api: Api, fakes: Fakes, world: World, ctx: dict[str, Any], ch: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "canary" + secrets.token_hex(12)
    creds = canary_credentials(fakes, canary)
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    texts, ids = await _exercise_api(api, fakes, creds)
    fakes.webhook.inject("gone", times=None)
    for dest_id in ids:
        result = await sync_destination(ctx, dest_id, audience_id)
        assert result["status"] in ("failed", "succeeded"), result
        texts.append(repr(result))
        runs = await api.call("GET", f"/admin/v1/syncs?destination_id={dest_id}")
        texts.append(runs.text)
        texts.append((await api.call("GET", f"/admin/v1/syncs/{runs.json()['data'][0]['id']}")).text)
        replay = await api.call("POST", f"/admin/v1/syncs/{runs.json()['data'][0]['id']}/replay")
        texts.append(replay.text)
    texts.append(repr(api.queued))
    assert len(api.queued) == 5
    encoded = base64.b64encode(canary.encode()).decode()
    for needle in (canary, encoded):
        assert not [t for t in texts if needle in t]
        assert needle not in caplog.text
        assert needle not in await _redis_text(ctx["services"].redis)
    assert _clickhouse_text(ch, canary) == [] and _clickhouse_text(ch, encoded) == []
    assert {"sync_state", "sync_runs", "audiences"} <= set(_clickhouse_text(ch, world.ns))  # the probe works
    assert "sync run" in caplog.text


def derived_forms(canary: str) -> list[str]:
    """The canary as a careless platform might echo it back."""
    b64 = base64.b64encode
    forms = [canary, b64(canary.encode()).decode(), b64(f"magpie:{canary}".encode()).decode()]
    forms += [b64(f"magpie:{canary}-us6".encode()).decode()[:24], urllib.parse.quote_plus(f"magpie:{canary}")]
    forms += ["".join(f"%{b:02X}" for b in canary.encode()), "".join(f"%{b:02x}" for b in canary.encode())]
    return forms


@pytest.mark.parametrize("form", ["header", "base64", "basic", "urlencoded", "percent"])
async def test_a_credential_echoed_back_by_a_platform_is_masked_everywhere(
    form: str,
    api: Api,
    fakes: Fakes,
    world: World,
    ctx: dict[str, Any],
    ch: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "canary" + secrets.token_hex(12)
    creds = canary_credentials(fakes, canary)
    world.people(range(1, 4))
    audience_id, _ = world.audience()
    world.change(audience_id, [world.pid(n) for n in range(1, 4)], "entered")
    texts: list[str] = []
    for kind in ("google_ads", "meta", "mailchimp", "hubspot"):
        config = fakes.setups()[kind][0]
        body = {"type": kind, "name": kind, "config": config, "credentials": creds[kind]}
        dest_id = (await api.call("POST", BASE, json=body)).json()["id"]
        fake = {"google_ads": fakes.google, "meta": fakes.meta}.get(kind) or getattr(fakes, kind)
        fake.inject("echo", times=None, form=form)
        tested = await api.call("POST", f"{BASE}/{dest_id}/test")
        assert tested.json()["ok"] is False and "ECHO" in tested.text, tested.text
        result = await sync_destination(ctx, dest_id, audience_id)
        assert result["status"] in ("failed", "partial") and result["failed"] == 3, result
        run = await api.call("GET", f"/admin/v1/syncs/{result['id']}")
        assert "ECHO" in run.text and "***" in run.text, run.text  # the echo reached the stored errors
        texts += [tested.text, run.text, repr(result)]
    texts.append((await api.call("GET", f"/admin/v1/syncs?audience_id={audience_id}")).text)
    for needle in derived_forms(canary):
        assert not [t for t in texts if needle in t], needle
        assert needle not in caplog.text
        assert _clickhouse_text(ch, needle) == []


async def test_an_unexpected_error_inside_a_sync_is_logged_and_raised_masked(
    fakes: Fakes, world: World, ctx: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    canary = "canary" + secrets.token_hex(12)
    creds = canary_credentials(fakes, canary)
    dest_id = await world.destination("hubspot", (fakes.setups()["hubspot"][0], creds["hubspot"]))
    audience_id, _ = world.audience()

    async def broken(db: Any, audience_id: str) -> str:
        header = base64.b64encode(f"magpie:{canary}".encode()).decode()
        raise ValueError(f"bug while echoing token={canary} auth=Basic {header}")

    monkeypatch.setattr(engine, "audience_key", broken)
    with pytest.raises(engine.SyncFailed) as info:
        await sync_destination(ctx, dest_id, audience_id)
    assert str(info.value).startswith("ValueError: bug while echoing token=***")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "Traceback" in caplog.text and "broken" in caplog.text  # the log keeps the traceback ...
    for needle in derived_forms(canary):
        assert needle not in caplog.text and needle not in str(info.value)  # ... masked
