"""HubSpot trait sync (`"mode": "traits"`): write changed values onto contact properties.

The engine (activation/crm/trait_sync.py) hands `send` members whose `traits` are exactly the CRM
properties to write (already diffed against what HubSpot last confirmed, CRM-owned fields removed).
A member pulled from HubSpot (identifier `ext:hubspot_contact_id`) is updated by record id
(`batch/update`, so a changed email never forks a contact); the others are upserted by email
(`batch/upsert`, idProperty email; results correlated by objectWriteTraceId). Batches of 100.
A value of None clears the property (sent as ""). 207 per-input errors fail only their member.
"""

from __future__ import annotations

from collections.abc import Sequence

from activation.destinations.base import Config, Credentials, Member, RecordFailure, SendResult, SyncBatch
from activation.destinations.http import as_dict, as_list, call, excerpt, json_bytes
from activation.destinations.hubspot_payload import (
    MAX_BATCH,
    Keyed,
    classify_error,
    member_key,
    upsert_outcome,
)
from activation.destinations.trait_mapping import read_mapping
from activation.net import HttpClient

FIELD = r"[a-z][a-z0-9_]{0,99}"
ID_TYPE = "ext:hubspot_contact_id"


def validate(config: Config) -> dict[str, str]:
    return read_mapping(config, FIELD)[1]


def properties(member: Member) -> dict[str, str]:
    return {
        k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in member.traits.items()
    }


async def send(session: HttpClient, base_url: str, batch: SyncBatch, credentials: Credentials) -> SendResult:
    headers = {
        "authorization": f"Bearer {credentials.require('access_token')}",
        "content-type": "application/json",
    }
    by_id = [m for m in batch.entered if m.values(ID_TYPE)]
    rest = [m for m in batch.entered if not m.values(ID_TYPE)]
    keyed = [Keyed(m, k) for m in rest if (k := member_key(m, "email"))]
    failures = [
        RecordFailure(m.profile_id, "no_email", permanent=True) for m in rest if not member_key(m, "email")
    ]
    for start in range(0, len(by_id), MAX_BATCH):
        failures += await _update(session, base_url, headers, by_id[start : start + MAX_BATCH])
    for start in range(0, len(keyed), MAX_BATCH):
        chunk = keyed[start : start + MAX_BATCH]
        body = {"inputs": [{"idProperty": "email", "id": k.key, "properties": properties(k.member),
                            "objectWriteTraceId": k.key} for k in chunk]}  # fmt: skip
        url = f"{base_url}/crm/v3/objects/contacts/batch/upsert"
        response = await call(session, "POST", url, headers=headers, body=json_bytes(body))
        if response.status >= 300 and response.status != 207:
            raise classify_error(response, records=True)
        failures += upsert_outcome(response.json(), chunk)[1]
    return SendResult(added=len(batch.entered) - len(failures), failures=tuple(failures))


async def _update(
    session: HttpClient, base_url: str, headers: dict[str, str], members: Sequence[Member]
) -> list[RecordFailure]:
    ids = {m.values(ID_TYPE)[0]: m for m in members}
    body = {"inputs": [{"id": rid, "properties": properties(m)} for rid, m in ids.items()]}
    url = f"{base_url}/crm/v3/objects/contacts/batch/update"
    response = await call(session, "POST", url, headers=headers, body=json_bytes(body))
    if response.status >= 300 and response.status != 207:
        raise classify_error(response, records=True)
    failures = []
    for error in map(as_dict, as_list(as_dict(response.json()).get("errors"))):
        reason = f"hubspot {excerpt(error.get('category'))}: {excerpt(error.get('message'))}"
        for rid in as_list(as_dict(error.get("context")).get("ids")):
            if str(rid) in ids:
                failures.append(RecordFailure(ids[str(rid)].profile_id, reason, permanent=True))
    return failures
