"""Salesforce trait sync (`"mode": "traits"`): write changed values onto Contact (or Lead) fields.

`send` gets members whose `traits` are exactly the fields to write (diffed against what Salesforce
last confirmed, CRM-owned fields removed; activation/crm/trait_sync.py). A member pulled from
Salesforce (`ext:salesforce_contact_id` / `ext:salesforce_lead_id`) is updated by record Id through
sObject Collections (`PATCH /composite/sobjects`); the others are upserted by the external id field
`external_id_field` (e.g. `Magpie_Id__c`, holding the Magpie profile id) through
`PATCH /composite/sobjects/{object}/{field}`. 200 records per call, `allOrNone: false`; results
come back in request order with per-record errors (UNABLE_TO_LOCK_ROW and the like are retryable).
Without an external id field, a member Salesforce does not know yet fails as `no_salesforce_id`.
"""

from __future__ import annotations

from collections.abc import Sequence

from activation.destinations.base import Config, Credentials, Member, RecordFailure, SendResult, SyncBatch
from activation.destinations.config import ConfigReader
from activation.destinations.http import JSON_HEADERS, call, json_bytes
from activation.destinations.salesforce_payload import (
    MAX_COLLECTION,
    RETRYABLE_CODES,
    classify_error,
    collection_body,
    read_outcomes,
)
from activation.destinations.trait_mapping import read_mapping
from activation.net import HttpClient

FIELD = r"[A-Za-z][A-Za-z0-9_]{0,79}"
ID_TYPES = {"Contact": "ext:salesforce_contact_id", "Lead": "ext:salesforce_lead_id"}


def validate(config: Config) -> dict[str, str]:
    errors = read_mapping(config, FIELD)[1]
    if config.get("external_id_field") is not None:
        r = ConfigReader(config)
        r.text("external_id_field", pattern=FIELD + "__c")
        errors.update(r.errors)
    return errors


async def send(
    session: HttpClient,
    data_url: str,
    sobject: str,
    batch: SyncBatch,
    credentials: Credentials,
    config: Config,
) -> SendResult:
    headers = {**JSON_HEADERS, "authorization": f"Bearer {credentials.require('access_token')}"}
    ext_field = str(config.get("external_id_field") or "")
    known = [m for m in batch.entered if m.values(ID_TYPES[sobject])]
    unknown = [m for m in batch.entered if not m.values(ID_TYPES[sobject])]
    failures = [] if ext_field else [RecordFailure(m.profile_id, "no_salesforce_id", True) for m in unknown]
    calls: list[tuple[str, list[Member], list[dict[str, object]]]] = []
    for start in range(0, len(known), MAX_COLLECTION):
        chunk = known[start : start + MAX_COLLECTION]
        records = [_record(sobject, "Id", m.values(ID_TYPES[sobject])[0], m) for m in chunk]
        calls.append((f"{data_url}/composite/sobjects", chunk, records))
    for start in range(0, len(unknown) if ext_field else 0, MAX_COLLECTION):
        chunk = unknown[start : start + MAX_COLLECTION]
        records = [_record(sobject, ext_field, m.profile_id, m) for m in chunk]
        calls.append((f"{data_url}/composite/sobjects/{sobject}/{ext_field}", chunk, records))
    for url, chunk, records in calls:
        failures += await _write(session, url, headers, chunk, records)
    return SendResult(added=len(batch.entered) - len(failures), failures=tuple(failures))


def _record(sobject: str, key_field: str, key: str, member: Member) -> dict[str, object]:
    record: dict[str, object] = {"attributes": {"type": sobject}, key_field: key}
    record.update(member.traits)
    return record


async def _write(
    session: HttpClient,
    url: str,
    headers: dict[str, str],
    members: Sequence[Member],
    records: list[dict[str, object]],
) -> list[RecordFailure]:
    response = await call(session, "PATCH", url, headers=headers, body=json_bytes(collection_body(records)))
    if response.status >= 300:
        raise classify_error(response)
    outcomes = read_outcomes(response.json(), len(records))
    return [
        RecordFailure(
            m.profile_id, o.reason, permanent=o.code not in RETRYABLE_CODES and o.code != "NO_RESULT"
        )
        for m, o in zip(members, outcomes, strict=True)
        if not o.ok
    ]
