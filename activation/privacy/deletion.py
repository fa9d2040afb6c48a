"""The deletion job: expand → (suppress) → remove from every destination → forget every table →
Redis → receipt (SPEC §9).

Idempotent and resumable: the expanded person is stored in the request before anything is erased,
so a run interrupted half-way re-runs from that (widened again by whatever the graph still
holds), and every step is a no-op where there is nothing left. The outbound removal runs before
the tables are forgotten, because it reads what each destination confirmed (sync_state) and the
identifiers destinations were sent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.jobs import LOCK_KEY as STITCH_LOCK
from activation.locks import held
from activation.privacy import audit, requests
from activation.privacy.expand import expand
from activation.privacy.keyspace import scrub
from activation.privacy.outbound import Plans, erase_planned, plan, plans_from, plans_json
from activation.privacy.person import Person
from activation.privacy.requests import PrivacyRequest
from activation.privacy.retry_state import is_sealed, seal, unseal
from activation.privacy.suppressions import identifier_hash, suppress
from activation.privacy.wiring import PrivacyWiring, wiring_of
from activation.profiles_api.documents import LOCK_KEY as DOCUMENTS_LOCK
from activation.services import Services, of

log = logging.getLogger("magpie.privacy")
JOB = "privacy_delete"
MODES = ("delete", "suppress", "delete_and_suppress")
LOCK_S = 900  # how long an erasure waits for a running stitch (the locks renew: activation.locks)


class StitchBusy(Exception):
    pass


def job_id(request_id: str) -> str:
    return f"{JOB}:{request_id}"


def stored_state(request: PrivacyRequest, secret_key: str = "") -> dict[str, Any]:
    """The request's identifiers (and, after a failed destination step, what to retry)."""
    if is_sealed(request.identifiers):
        return unseal(secret_key, request.id, request.identifiers)
    return request.plain()


def stored_person(request: PrivacyRequest, secret_key: str = "") -> Person:
    plain = stored_state(request, secret_key)
    ids = frozenset(Identifier(str(t), str(v)) for t, v in plain.get("identifiers", []))
    return Person(frozenset(str(p) for p in plain.get("profiles", [])), ids)


async def privacy_delete(ctx: dict[str, Any], request_id: str) -> str:
    """Run one deletion request to its end; returns its final status."""
    services, wiring = of(ctx), wiring_of(ctx)
    request = await requests.get(services.db, request_id, "deletion")
    if request is None or request.status == "completed":
        return request.status if request else "missing"
    async with held(services.redis, f"magpie:privacy:running:{request_id}") as acquired:
        if not acquired:
            return "running"  # another worker has it; the resume cron re-checks later
        try:
            return (await _run(services, wiring, request)).status
        except Exception as exc:
            # the outer boundary: record the failure (no identifiers in it), then let arq retry
            log.error("privacy deletion %s failed: %s", request_id, type(exc).__name__)
            latest = await requests.get(services.db, request_id, "deletion") or request
            failed = replace(latest, status="failed", error=f"{type(exc).__name__}; it is retried")
            await requests.save(services.db, failed)
            raise


async def _run(services: Services, wiring: PrivacyWiring, request: PrivacyRequest) -> PrivacyRequest:
    started = request.started_at or services.clock()
    state = stored_state(request, services.secret_key)
    retry = plans_from(state["retry"]) if "retry" in state else None
    person = await asyncio.to_thread(expand, services.ch, [], stored_person(request, services.secret_key))
    text = requests.person_json(person) if retry is None else request.identifiers  # a retry stays sealed
    request = replace(request, status="running", started_at=started, identifiers=text)
    request = await requests.save(services.db, request)
    receipt: dict[str, Any] = {
        "identifiers_covered": _covered(services.secret_key, person),
        "profiles_covered": len(person.profile_ids),
        "suppressed": 0,
        "destinations": [],
        "rows_removed": {},
        "redis_keys_removed": 0,
    }
    if request.mode in ("suppress", "delete_and_suppress"):
        receipt["suppressed"] = await suppress(services, person.identifiers, request.id)
    failed: Plans = {}
    if request.mode in ("delete", "delete_and_suppress"):
        erased, failed = await _erase(services, wiring, person, retry)
        receipt |= erased
    if retry is not None:
        receipt = _after_retry(orjson.loads(request.receipt) if request.receipt else {}, receipt, retry)
    return await _finish(services, request, receipt, started, person, failed)


async def _erase(
    services: Services, wiring: PrivacyWiring, person: Person, retry: Plans | None
) -> tuple[dict[str, Any], Plans]:
    """Outbound first (it reads sync_state and the identity rows), then every table, then Redis.
    Returns the receipt's parts and the plans of the destinations that failed."""
    plans = retry if retry is not None else await plan(services, person)
    destinations = await erase_planned(services, person, plans)
    failed = {o["destination_id"] for o in destinations if o["status"] == "failed"}
    rows: dict[str, int] = {}
    # Under the stitch lock: a stitch run that read the person's events before they were erased
    # would otherwise write their links, mapping and profile back after the forget.
    # And under the profile documents' lock, for the same reason (their writes run after a stitch).
    async with (
        held(services.redis, STITCH_LOCK, wait_s=LOCK_S) as acquired,
        held(services.redis, DOCUMENTS_LOCK, wait_s=LOCK_S) as documents_free,
    ):
        if not acquired or not documents_free:
            raise StitchBusy("the identity stitch lock stayed taken; the request is retried")
        for path in wiring.paths:
            rows |= await asyncio.to_thread(path.forget, services.ch, person)
    await ProfileCache(services.redis).invalidate(person.profile_ids, person.identifiers)
    keys = await scrub(services.redis, person.values() | person.profile_ids)
    receipt = {"destinations": destinations, "rows_removed": rows, "redis_keys_removed": keys}
    return receipt, {d: p for d, p in plans.items() if d in failed}


def _after_retry(previous: dict[str, Any], now: dict[str, Any], retried: Plans) -> dict[str, Any]:
    """The receipt of a retry: the earlier outcomes, with those of the retried destinations replaced,
    and the rows removed by both runs."""
    kept = [o for o in previous.get("destinations", []) if o["destination_id"] not in retried]
    again = [o for o in now["destinations"] if o["destination_id"] in retried]
    rows = dict(previous.get("rows_removed", {}))
    for table, n in now["rows_removed"].items():
        rows[table] = rows.get(table, 0) + n
    retries = int(previous.get("retries", 0)) + 1
    return {**now, "destinations": kept + again, "rows_removed": rows, "retries": retries}


async def _finish(
    services: Services,
    request: PrivacyRequest,
    receipt: dict[str, Any],
    started: datetime,
    person: Person,
    failed_plans: Plans,
) -> PrivacyRequest:
    finished = services.clock()
    failed = [d for d in receipt["destinations"] if d.get("status") == "failed"]
    receipt["duration_ms"] = int((finished - started).total_seconds() * 1000)
    status = "failed" if failed else "completed"
    error = f"{len(failed)} destination(s) failed: see receipt.destinations; POST .../retry" if failed else ""
    kept = seal(services.secret_key, request.id, person, plans_json(failed_plans)) if failed else ""
    final = replace(
        request, status=status, finished_at=finished, receipt=orjson.dumps(receipt).decode(), error=error,
        identifiers=kept,
    )  # fmt: skip
    final = await requests.finish(services.db, final, keep_identifiers=bool(kept))
    total = sum(receipt["rows_removed"].values())
    await audit.record(
        services.db, finished, request.id, "deletion", status, token_id=request.token_id,
        identifier_hashes=request.identifier_hashes, mode=request.mode,
        detail=f"{total} rows removed, {len(receipt['identifiers_covered'])} identifiers covered",
    )  # fmt: skip
    return final


def _covered(secret_key: str, person: Person) -> list[dict[str, str]]:
    """The identifiers the deletion covered, by type and keyed hash (the suppression hash)."""
    return [{"type": i.type, "hash": identifier_hash(secret_key, i)} for i in person.sorted_identifiers()]
