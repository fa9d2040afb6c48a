"""One sync run of a destination × audience: removals first, then additions, batch by batch.

After every batch the confirmed outcome is written to `sync_state` (the checkpoint), so a run that
dies half-way is resumed by the next one without resending what the platform already confirmed.
Per-record failures and failed batches become dead letters; a failed batch stops the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from activation.db import Database
from activation.destinations import Member, PermanentError, SendResult, SyncBatch
from activation.sync import runs, state
from activation.sync.delivery import Delivery, RetriesExhausted
from activation.sync.limits import RateLimiter
from activation.sync.members import load_members
from activation.sync.redact import redact
from activation.sync.runs import DeadLetter, SyncRun
from activation.sync.state import Pair
from activation.sync.store import DestinationRecord

log = logging.getLogger("magpie.sync")
CONFIRMED = {"exited": "absent", "entered": "present"}
DEAD = {"exited": "dead_remove", "entered": "dead_add"}


class StopRun(Exception):
    """A batch failed as a whole: the run ends as failed (its members are dead-lettered)."""


@dataclass
class SyncJob:
    db: Database
    record: DestinationRecord
    pair: Pair
    audience_key: str
    delivery: Delivery
    limiter: RateLimiter
    batch_size: int
    run: SyncRun

    async def execute(self) -> SyncRun:
        await runs.save_run(self.db, self.run)
        try:
            await self._phase("exited")
            await self._phase("entered")
            status = "partial" if self.run.failed else "succeeded"
        except StopRun:
            status = "failed"
        except BaseException:
            await asyncio.shield(runs.save_run(self.db, self.run.finished("interrupted")))
            raise
        self.run = self.run.finished(status)
        await runs.save_run(self.db, self.run)
        log.info(
            "sync run %s destination=%s audience=%s status=%s added=%d removed=%d failed=%d",
            self.run.id, self.pair.destination_id, self.pair.audience_id, status,
            self.run.added, self.run.removed, self.run.failed,
        )  # fmt: skip
        return self.run

    async def _phase(self, change: str) -> None:
        fetch = state.to_remove if change == "exited" else state.to_add
        after = ""
        while pids := await fetch(self.db, self.pair, after, self.batch_size):
            after = pids[-1]
            members = await load_members(
                self.db, pids, self.record.field_mapping, self.record.identifier_priority
            )
            await self._deliver(change, members, f"{self.run.id}:{change}:{after}")

    async def _deliver(self, change: str, members: Sequence[Member], batch_id: str) -> None:
        entered = change == "entered"
        batch = SyncBatch(self.audience_key, members if entered else (), () if entered else members, batch_id)
        await self.limiter.acquire()
        try:
            result = await self.delivery.send(batch)
        except (PermanentError, RetriesExhausted) as exc:
            permanent = isinstance(exc, PermanentError)
            await self._fail_batch(change, members, exc.reason, permanent)
            raise StopRun from None
        await self._checkpoint(change, members, result)

    async def _checkpoint(self, change: str, members: Sequence[Member], result: SendResult) -> None:
        ids = {m.profile_id for m in members}
        failures = {f.profile_id: f for f in result.failures if f.profile_id in ids}
        changes = [(pid, CONFIRMED[change]) for pid in sorted(ids - set(failures))]
        changes += [(pid, DEAD[change]) for pid, f in failures.items() if f.permanent]
        await state.record(self.db, self.pair, self.run.id, changes)
        letters = [DeadLetter(pid, change, self._clean(f.reason), f.permanent) for pid, f in failures.items()]
        await runs.add_dead_letters(self.db, self.run, letters)
        done = len(ids) - len(failures)
        self.run = replace(
            self.run,
            added=self.run.added + (done if change == "entered" else 0),
            removed=self.run.removed + (done if change == "exited" else 0),
            failed=self.run.failed + len(failures),
        )
        for failure in list(failures.values())[:3]:
            self.run = self.run.with_error(f"{failure.profile_id}: {self._clean(failure.reason)}")
        if result.unattributed_invalid:
            self.run = self.run.with_error(f"{result.unattributed_invalid} rows refused (not attributable)")

    async def _fail_batch(self, change: str, members: Sequence[Member], reason: str, permanent: bool) -> None:
        reason = self._clean(reason)
        if permanent:
            dead = [(m.profile_id, DEAD[change]) for m in members]
            await state.record(self.db, self.pair, self.run.id, dead)
        letters = [DeadLetter(m.profile_id, change, reason, permanent) for m in members]
        await runs.add_dead_letters(self.db, self.run, letters)
        self.run = replace(self.run, failed=self.run.failed + len(members)).with_error(reason)
        log.warning("sync run %s: batch of %d %s failed: %s", self.run.id, len(members), change, reason)

    def _clean(self, text: str) -> str:
        return redact(text, self.delivery.credentials.values())

    def summary(self) -> dict[str, Any]:
        keys = ("id", "destination_id", "audience_id", "status", "added", "removed", "failed", "duration_ms")
        return {k: getattr(self.run, k) for k in keys}
