"""One sync run of a destination × audience: removals first, then additions, batch by batch.

After every batch the confirmed outcome is written to `sync_state` (the checkpoint), so a run that
dies half-way is resumed by the next one without resending what the platform already confirmed.
Per-record failures become dead letters and the run goes on. A batch the platform refuses for its
content (`RejectedError`), or one with rows counted invalid but not attributed, is re-sent in halves
until the refused records stand alone; those are dead-lettered and the rest is delivered. At most
`split_sends` extra sends per run go into this; past that a refused part is dead-lettered as
retryable. A batch that fails for the destination as a whole (auth, config, retries exhausted) stops
the run as failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from activation.db import Database
from activation.destinations import (
    Member,
    PermanentError,
    RecordFailure,
    RejectedError,
    SendResult,
    SyncBatch,
)
from activation.sync import runs, state
from activation.sync.delivery import Delivery, RetriesExhausted
from activation.sync.limits import RateLimiter
from activation.sync.members import load_members
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
    split_sends: int = 200

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

    async def remove(self, members: Sequence[Member]) -> SyncRun:
        """Remove these members now, whatever the membership says (privacy erasure), through the same
        removal path as a run's exits: batches, splitting, checkpoints and dead letters."""
        await runs.save_run(self.db, self.run)
        try:
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                await self._deliver("exited", chunk, f"{self.run.id}:exited:{chunk[-1].profile_id}")
            status = "partial" if self.run.failed else "succeeded"
        except StopRun:
            status = "failed"
        self.run = self.run.finished(status)
        await runs.save_run(self.db, self.run)
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
        except RejectedError as exc:
            if len(members) > 1 and self._may_split():
                return await self._split(change, members, batch_id)
            reason = exc.reason if len(members) == 1 else f"not isolated (split budget spent): {exc.reason}"
            return await self._fail_batch(change, members, reason, permanent=len(members) == 1)
        except (PermanentError, RetriesExhausted) as exc:
            permanent = isinstance(exc, PermanentError)
            await self._fail_batch(change, members, exc.reason, permanent)
            raise StopRun from None
        if result.unattributed_invalid and len(members) > 1 and self._may_split():
            return await self._split(change, members, batch_id)
        await self._checkpoint(change, members, result)

    def _may_split(self) -> bool:
        return self.split_sends >= 2

    async def _split(self, change: str, members: Sequence[Member], batch_id: str) -> None:
        """Re-send each half (sends are idempotent); recursion stops at single members."""
        self.split_sends -= 2
        middle = len(members) // 2
        await self._deliver(change, members[:middle], f"{batch_id}.0")
        await self._deliver(change, members[middle:], f"{batch_id}.1")

    async def _checkpoint(self, change: str, members: Sequence[Member], result: SendResult) -> None:
        ids = {m.profile_id for m in members}
        failures = {f.profile_id: f for f in result.failures if f.profile_id in ids}
        if result.unattributed_invalid and len(members) == 1 and not failures:
            reason = f"the platform counted {result.unattributed_invalid} of this member's rows invalid"
            failures = {members[0].profile_id: RecordFailure(members[0].profile_id, reason, permanent=True)}
            result = replace(result, unattributed_invalid=0)
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
        return self.delivery.redactor(text)

    def summary(self) -> dict[str, Any]:
        keys = ("id", "destination_id", "audience_id", "status", "added", "removed", "failed", "duration_ms")
        return {k: getattr(self.run, k) for k in keys}
