"""Through the real `magpie serve` process: create and test a destination, queue a sync, read its run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess


async def _admin(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await asyncio.to_thread(server.admin, method, path, **kwargs)


async def test_destination_test_and_sync_run_through_the_server(server: ServerProcess) -> None:
    async with FakeWebhookReceiver() as hook:
        body = {
            "type": "webhook",
            "name": "hook",
            "config": {"url": hook.url},
            "credentials": {"secret": hook.secret},
        }
        created = await _admin(server, "POST", "/destinations", json=body)
        assert created.status_code == 201, created.text
        dest_id = created.json()["id"]
        tested = await _admin(server, "POST", f"/destinations/{dest_id}/test")
        assert tested.json() == {"ok": True, "tested": True}
        assert len(hook.deliveries) == 1 and hook.deliveries[0]["audience"] == "magpie.test"
        trigger = {"destination_id": dest_id, "audience_id": "aud_none"}
        assert (await _admin(server, "POST", "/syncs", json=trigger)).status_code == 202
        deadline = time.monotonic() + 20
        runs: list[Any] = []
        while time.monotonic() < deadline and not runs:
            await asyncio.sleep(0.2)
            page = await _admin(server, "GET", f"/syncs?destination_id={dest_id}")
            runs = [r for r in page.json()["data"] if r["status"] != "running"]
        assert [(r["status"], r["trigger"], r["added"]) for r in runs] == [("succeeded", "manual", 0)]
    assert secret_free(server.log(), hook.secret)


def secret_free(text: str, secret: str) -> bool:
    return secret not in text and secret.removeprefix("whsec_") not in text
