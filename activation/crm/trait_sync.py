"""Trait sync as a sync-engine run: the same job, lock, delivery (retries, token refresh, Retry-After),
record isolation, dead letters and replay as audience syncs, over a different diff.

`TraitSyncJob` replaces the membership diff of `SyncJob` with a value diff: it pages through the
audience's current members plus everyone it has written before (so a member who leaves gets their
`audience:<key>` field set to false), computes each one's mapped values, and sends only the fields
whose value differs from what the CRM last confirmed (`crm_trait_state`). Confirmed fields are
checkpointed per batch; a permanently refused member is dead-lettered and skipped (`dead_add` in
`sync_state`) until replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from activation.audiences.current import members_sql
from activation.crm import trait_values
from activation.destinations import Member, SendResult
from activation.destinations.trait_mapping import read_mapping
from activation.sync.members import load_members
from activation.sync.runner import SyncJob

_POPULATION = (
    "SELECT profile_id FROM ("
    f" {members_sql()}"
    " UNION DISTINCT SELECT DISTINCT profile_id FROM crm_trait_state WHERE destination_id = {did:String}"
    ") WHERE profile_id > {after:String} AND profile_id NOT IN ("
    " SELECT profile_id FROM sync_state WHERE destination_id = {did:String} AND audience_id = {aid:String}"
    " GROUP BY profile_id HAVING toString(argMax(status, version)) = 'dead_add')"
    " ORDER BY profile_id LIMIT {n:UInt32}"
)


class TraitSyncJob(SyncJob):
    async def _phase(self, change: str) -> None:
        if change != "entered":
            return
        after = ""
        while pids := await self._page(after):
            after = pids[-1]
            members = await self._changes(pids)
            if members:
                await self._deliver("entered", members, f"{self.run.id}:traits:{after}")

    async def _page(self, after: str) -> list[str]:
        params = {
            "aid": self.pair.audience_id,
            "did": self.pair.destination_id,
            "after": after,
            "n": self.batch_size,
        }
        return [str(r[0]) for r in await self.db.rows(_POPULATION, params)]

    async def _changes(self, pids: Sequence[str]) -> list[Member]:
        mapping = read_mapping(self.record.config, r".+")[0].writable()
        members = await load_members(self.db, pids, {}, ())
        computed = await trait_values.computed_values(self.db, pids)
        audiences = await trait_values.memberships(self.db, pids)
        confirmed = await trait_values.confirmed_values(self.db, self.pair.destination_id, pids)
        out = []
        for member in members:
            pid = member.profile_id
            wanted = trait_values.desired(mapping, member.traits, computed[pid], audiences[pid])
            diff = trait_values.changed(wanted, confirmed[pid])
            if diff:
                out.append(replace(member, traits=diff))
        return out

    async def _checkpoint(self, change: str, members: Sequence[Member], result: SendResult) -> None:
        failed = {f.profile_id for f in result.failures}
        done = {m.profile_id: dict(m.traits) for m in members if m.profile_id not in failed}
        await trait_values.confirm(self.db, self.pair.destination_id, self.run.id, done)
        await super()._checkpoint(change, members, result)
