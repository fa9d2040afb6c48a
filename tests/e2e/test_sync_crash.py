"""A crash in the middle of a sync: `kill -9` of the server while a webhook batch is in flight,
restart on the same data dir, sync again — the receiver ends with exactly the audience and no
confirmed member is sent twice."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.test_activation_e2e import admin, eventually, profile, run_audience, runs_of
from tests.fakes.webhook import FakeWebhookReceiver
from tests.server import ServerProcess

PEOPLE = 6


async def _stitched(server: ServerProcess, users: list[str]) -> list[str] | None:
    docs = [await profile(server, user) for user in users]
    return [d["profile_id"] for d in docs if d] if all(docs) else None


async def test_kill_9_mid_sync_then_resume_exactly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    ns = uuid.uuid4().hex[:8]
    users = [f"crash-{ns}-{n}" for n in range(PEOPLE)]
    source = server.create_source("crash")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{source['write_key']}:".encode()).decode()}
    batch = [{"type": "identify", "userId": u, "traits": {"tier": f"vip-{ns}"}} for u in users]
    assert server.http.post("/v1/batch", json={"batch": batch}, headers=auth).status_code == 200
    pids = await eventually(lambda: _stitched(server, users), 30)
    assert pids and len(pids) == PEOPLE
    async with FakeWebhookReceiver() as hook:
        hook.latency_s = 1.0  # each batch takes a second: time to strike mid-sync
        body = {"type": "webhook", "name": "crashy", "config": {"url": hook.url, "batch_size": 2},
                "credentials": {"secret": hook.secret}}  # fmt: skip
        destination = (await admin(server, "POST", "/destinations", json=body)).json()["id"]
        key = f"vip_{ns}"
        audience = {
            "name": key,
            "key": key,
            "query": f"trait('tier') = 'vip-{ns}'",
            "destinations": [destination],
        }
        audience_id = (await admin(server, "POST", "/audiences", json=audience)).json()["id"]
        await run_audience(server, audience_id, expected_members=PEOPLE)
        trigger = {"destination_id": destination, "audience_id": audience_id}
        assert (await admin(server, "POST", "/syncs", json=trigger)).status_code == 202
        assert await eventually(lambda: _delivered(hook), 30, 0.05), "the first batch never arrived"
        hook.inject("hang")  # the next batch hangs in flight...
        await asyncio.sleep(0.5)
        server.kill()  # ...and the server dies mid-sync
        confirmed = {m["profile_id"] for d in hook.deliveries for m in d["entered"]}
        assert 0 < len(confirmed) < PEOPLE
        hook.latency_s, hook.faults = 0.0, []

        restarted = ServerProcess(server.data_dir).start()
        try:
            before = {r["id"] for r in await runs_of(restarted, destination, audience_id)}
            assert (await admin(restarted, "POST", "/syncs", json=trigger)).status_code == 202

            async def finished() -> list[dict[str, Any]] | None:
                new = [r for r in await runs_of(restarted, destination, audience_id) if r["id"] not in before]
                return new if new and new[0]["status"] != "running" else None

            # The dead server's destination lock expires within its 60 s TTL; until then a new run
            # waits (or reports busy) and the 30 s scheduler queues the pair again.
            runs = await eventually(finished, 180)
            assert runs and runs[0]["status"] == "succeeded", runs
            assert hook.members[key] == set(pids)
            sent = Counter(m["profile_id"] for d in hook.deliveries for m in d["entered"])
            assert all(sent[p] == 1 for p in confirmed), f"confirmed members were resent: {sent}"
        finally:
            restarted.stop()


async def _delivered(hook: FakeWebhookReceiver) -> bool:
    return bool(hook.deliveries)
