"""Out to every destination: a person is removed from every list Magpie synced them to, and the
platform's own erasure API is called where one exists (`SupportsErasure`).

Which lists: `sync_state` rows of the person's profile ids whose newest status is `present` (or a
removal that failed for good, `dead_remove`) — read from the engine's confirmed state, so it works
after the person has left every membership. Each destination × audience becomes one sync run
(trigger `privacy`) through the engine's removal path (`SyncJob.remove`: batching, splitting,
checkpoints, dead letters), under the destination's lock, with the engine's retry rules
(`Delivery.attempt`) around the erasure call as well. Call this BEFORE the person's identity rows
are forgotten: members are loaded from them (the platforms match removals on the same fields they
were sent), widened with the Person's own identifiers.

One outcome per destination: {destination_id, type, status, detail}, status one of `removed`
(taken off lists, no erasure API), `erased` (the platform deleted the person), `notified` (a
webhook was told), `failed` (see detail; the request can be retried) or `skipped` (never synced).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from activation.destinations import REGISTRY, Credentials, DestinationError, Member, SupportsErasure
from activation.privacy.person import Person
from activation.services import Services
from activation.sync.delivery import Delivery, RetriesExhausted
from activation.sync.engine import SyncDeps, audience_key
from activation.sync.limits import DestinationLock, LockBusy, RateLimiter
from activation.sync.members import load_members
from activation.sync.redact import Redactor
from activation.sync.runner import SyncJob
from activation.sync.runs import SyncRun, new_run_id
from activation.sync.state import Pair
from activation.sync.store import DestinationRecord

log = logging.getLogger("magpie.privacy")
TRIGGER = "privacy"
HELD = ("present", "dead_remove")
_SYNCED = (
    "SELECT destination_id, audience_id, profile_id, toString(argMax(status, version)) FROM sync_state"
    " WHERE profile_id IN {pids:Array(String)} GROUP BY destination_id, audience_id, profile_id"
)
Synced = dict[str, dict[str, list[str]]]  # destination → audience → profiles still held there
Plans = dict[str, dict[str, list[Member]]]  # destination → audience → members to remove there


def identifier_map(person: Person) -> dict[str, list[str]]:
    """type → sorted values, the shape destinations read (`Member.identifiers`)."""
    out: dict[str, list[str]] = {}
    for identifier in person.sorted_identifiers():
        out.setdefault(identifier.type, []).append(identifier.value)
    return out


async def synced(services: Services, person: Person) -> tuple[set[str], Synced]:
    """Destinations that ever had a sync_state row for the person, and where they are still held."""
    rows = await services.db.rows(_SYNCED, {"pids": sorted(person.profile_ids)})
    ever: set[str] = set()
    held: Synced = {}
    for did, aid, pid, status in rows:
        ever.add(str(did))
        if status in HELD:
            held.setdefault(str(did), {}).setdefault(str(aid), []).append(str(pid))
    return ever, held


async def erase_everywhere(services: Services, person: Person) -> list[dict[str, Any]]:
    """Remove the person from every synced list and call each platform's erasure API."""
    return await erase_planned(services, person, await plan(services, person))


async def plan(services: Services, person: Person) -> Plans:
    """Every destination that ever had a sync_state row for the person → audience → the members to
    remove there (loaded now, while the identity rows still exist). Call before forgetting."""
    deps = SyncDeps.of(services)
    ever, held = await synced(services, person)
    plans: Plans = {}
    for destination_id in sorted(ever):
        record = await deps.store.get(destination_id)
        audiences = held.get(destination_id, {})
        plans[destination_id] = {
            aid: await _members(deps, record, person, pids) if record else []
            for aid, pids in sorted(audiences.items())
        }
    return plans


async def erase_planned(services: Services, person: Person, plans: Plans) -> list[dict[str, Any]]:
    """Carry out `plans` (from `plan`, or the failed part kept for a retry): one outcome per
    destination of the store; those not in `plans` are skipped as never synced."""
    deps = SyncDeps.of(services)
    outcomes: list[dict[str, Any]] = []
    after = ""
    while page := await deps.store.list(after, 100):
        after = page[-1].id
        for record in page:
            planned = plans.get(record.id)
            outcome = await _at_destination(deps, record, person, planned is not None, planned or {})
            outcomes.append({"destination_id": record.id, "type": record.type, **outcome})
    return outcomes


def plans_json(plans: Plans) -> dict[str, Any]:
    return {d: {a: [asdict(m) for m in ms] for a, ms in by.items()} for d, by in plans.items()}


def plans_from(doc: Mapping[str, Any]) -> Plans:
    return {str(d): {str(a): [Member(**m) for m in ms] for a, ms in by.items()} for d, by in doc.items()}


async def _at_destination(
    deps: SyncDeps, record: DestinationRecord, person: Person, ever: bool, held: Mapping[str, list[Member]]
) -> dict[str, str]:
    if not ever or record.type not in REGISTRY:
        return {"status": "skipped", "detail": "never synced" if ever is False else "unknown type"}
    lock = DestinationLock(
        deps.redis, record.id, ttl_s=deps.settings.lock_ttl_s, wait_s=deps.settings.lock_wait_s
    )
    try:
        async with lock:
            return await _erase(deps, record, person, held)
    except LockBusy:
        return {"status": "failed", "detail": "destination busy (a sync holds its lock); retry the request"}


async def _erase(
    deps: SyncDeps, record: DestinationRecord, person: Person, held: Mapping[str, list[Member]]
) -> dict[str, str]:
    destination = REGISTRY[record.type]
    credentials = deps.store.credentials(record)
    redactor = Redactor(credentials.values())

    async def persist(fresh: Credentials) -> None:
        await deps.store.save_credentials(record, fresh)

    async with deps.http(deps.allow, deps.settings.request_timeout_s) as session:
        delivery = Delivery(
            destination, session, credentials, record.config,
            policy=deps.settings.retry, on_refresh=persist, sleep=deps.sleep,
        )  # fmt: skip
        problems = await _remove_from_lists(deps, record, delivery, held)
        status, detail = ("removed", f"removed from {len(held)} list(s)") if held else ("skipped", "")
        if isinstance(destination, SupportsErasure):
            status, detail = await _platform_erase(delivery, destination, person, redactor, detail)
    if status == "failed":
        problems.append(detail)
    if problems:
        return {"status": "failed", "detail": "; ".join(problems)}
    return {"status": status, "detail": detail or "nothing held"}


async def _remove_from_lists(
    deps: SyncDeps,
    record: DestinationRecord,
    delivery: Delivery,
    held: Mapping[str, list[Member]],
) -> list[str]:
    """One privacy run per audience still holding the person; the problems of those not succeeded."""
    problems = []
    for audience_id, members in sorted(held.items()):
        run = await _remove(deps, record, delivery, audience_id, members)
        if run.status != "succeeded":
            problems.append(f"audience {audience_id}: {run.status} {'; '.join(run.errors)}".strip())
    return problems


async def _members(
    deps: SyncDeps, record: DestinationRecord, person: Person, pids: Sequence[str]
) -> list[Member]:
    loaded = await load_members(deps.db, pids, record.field_mapping, record.identifier_priority)
    own = identifier_map(person)
    return [replace(m, identifiers=_union(m.identifiers, own)) for m in loaded]


def _union(a: Mapping[str, Sequence[str]], b: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in a.items()}
    for kind, values in b.items():
        out[kind] = out.get(kind, []) + [v for v in values if v not in out.get(kind, [])]
    return out


async def _remove(
    deps: SyncDeps, record: DestinationRecord, delivery: Delivery, audience_id: str, members: list[Member]
) -> SyncRun:
    destination = REGISTRY[record.type]
    job = SyncJob(
        db=deps.db,
        record=record,
        pair=Pair(record.id, audience_id, record.consent_category),
        audience_key=await audience_key(deps.db, audience_id),
        delivery=delivery,
        limiter=RateLimiter(deps.redis, record.id, deps.settings.batches_per_s),
        batch_size=min(destination.batch_limit(record.config), deps.settings.max_batch_members),
        run=SyncRun(new_run_id(), record.id, audience_id, TRIGGER),
        split_sends=deps.settings.split_sends_per_run,
    )
    return await job.remove(members)


async def _platform_erase(
    delivery: Delivery, destination: SupportsErasure, person: Person, redactor: Redactor, detail: str
) -> tuple[str, str]:
    identifiers = identifier_map(person)

    async def once() -> Any:
        return await destination.erase(delivery.session, delivery.credentials, delivery.config, identifiers)

    try:
        erasure = await delivery.attempt(once)
    except (DestinationError, RetriesExhausted) as exc:
        reason = redactor(exc.reason)
        log.warning("privacy erasure at %s failed: %s", getattr(destination, "type", "?"), reason)
        return "failed", f"erasure call failed: {reason}"
    joined = "; ".join(p for p in (detail, erasure.detail) if p)
    if erasure.status == "skipped":
        return ("removed" if detail else "skipped"), joined
    return erasure.status, joined
