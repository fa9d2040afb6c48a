"""The export job: everything held about a person as one JSON document, written to a file under
the data directory and served from it (SPEC §9).

Bounded memory: the small sections (profile, traits, identities, ledger, consent, memberships,
destinations) are read whole; events, which may be hundreds of thousands, are streamed from
ClickHouse as JSONEachRow chunks and written straight to the file, one line at a time. The job is
idempotent: the document is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.privacy import audit, requests
from activation.privacy.consent import latest_consent
from activation.privacy.deletion import stored_person
from activation.privacy.expand import expand
from activation.privacy.person import PROFILES, Person
from activation.privacy.wiring import PrivacyWiring, wiring_of
from activation.services import of

JOB = "privacy_export"
_IDS = "{ids:Array(String)}"
_SECTIONS = {
    # the session columns of 0019 are bookkeeping (the latest session's span and an identifier hash)
    "profiles": "SELECT * EXCEPT (version, deleted, sessions_start, sessions_end, sessions_key)"
    f" FROM profiles FINAL WHERE profile_id IN {PROFILES} AND deleted = 0",
    "traits": "SELECT profile_id, trait, value, source_id, updated_at FROM profile_traits FINAL"
    f" WHERE profile_id IN {PROFILES} AND deleted = 0 ORDER BY profile_id, trait",
    "computed_traits": "SELECT profile_id, name, value, computed_at FROM profile_computed_traits FINAL"
    f" WHERE profile_id IN {PROFILES} AND deleted = 0 ORDER BY profile_id, name",
    "identities": "SELECT profile_id, identifier_type AS type, identifier_value AS value"
    f" FROM identity_current WHERE profile_id IN {PROFILES} ORDER BY type, value",
    "merge_ledger": "SELECT * EXCEPT (version, deleted) FROM merge_ledger FINAL"
    f" WHERE profile_id IN {PROFILES} AND deleted = 0 ORDER BY timestamp",
    "audience_membership": "SELECT m.audience_id, a.name AS audience_name, m.profile_id, toString(m.change)"
    " AS change, m.at FROM audience_membership_changes AS m LEFT JOIN (SELECT id, name FROM audiences FINAL)"
    f" AS a ON a.id = m.audience_id WHERE m.profile_id IN {PROFILES} ORDER BY m.at",
    "destinations": "SELECT s.destination_id, d.type AS destination_type, d.name AS destination_name,"
    " s.audience_id, s.profile_id, toString(s.status) AS status, s.updated_at FROM sync_state AS s"
    " LEFT JOIN (SELECT id, type, name FROM destinations FINAL) AS d ON d.id = s.destination_id"
    f" WHERE s.profile_id IN {PROFILES} ORDER BY s.updated_at",
}
_EVENTS = (
    f"SELECT * FROM events WHERE user_id IN {_IDS} OR anonymous_id IN {_IDS}"
    " ORDER BY timestamp, message_id FORMAT JSONEachRow"
)


def document_path(wiring: PrivacyWiring, request_id: str) -> Path:
    return wiring.exports_dir / f"{request_id}.json"


async def privacy_export(ctx: dict[str, Any], request_id: str) -> str:
    services, wiring = of(ctx), wiring_of(ctx)
    request = await requests.get(services.db, request_id, "export")
    if request is None or request.status == "completed":
        return request.status if request else "missing"
    started = services.clock()
    request = await requests.save(services.db, replace(request, status="running", started_at=started))
    person = await asyncio.to_thread(expand, services.ch, [], stored_person(request))
    path = document_path(wiring, request_id)
    header = {"id": request_id, "status": "completed", "generated_at": started.isoformat()}
    events = await asyncio.to_thread(write_document, services.ch, person, path, header)
    finished = services.clock()
    receipt = {"events": events, "path": str(path), "bytes": path.stat().st_size}
    done = replace(request, status="completed", finished_at=finished, receipt=orjson.dumps(receipt).decode())
    await requests.finish(services.db, done, keep_identifiers=True)  # forget() matches on them
    await audit.record(
        services.db, finished, request_id, "export", "completed", token_id=request.token_id,
        identifier_hashes=request.identifier_hashes, detail=f"{events} events",
    )  # fmt: skip
    return "completed"


def write_document(ch: Client, person: Person, path: Path, header: dict[str, Any]) -> int:
    """Write the document to `path` (atomically); returns the number of events in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(orjson.dumps(header)[:-1])
        pairs = [{"type": i.type, "value": i.value} for i in person.sorted_identifiers()]
        who = {"profile_ids": sorted(person.profile_ids), "identifiers": pairs}
        out.write(b',"person":' + orjson.dumps(who))
        for name, sql in _SECTIONS.items():
            result = ch.query(sql, parameters=person.params())
            rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
            out.write(f',"{name}":'.encode() + orjson.dumps(rows, default=str))
        consent = {p: latest_consent(ch, p) for p in sorted(person.profile_ids)}
        out.write(b',"consent":' + orjson.dumps(consent, default=str))
        out.write(b',"events":[')
        count = _write_events(ch, person, out)
        out.write(b"]}")
    os.replace(partial, path)
    return count


def _write_events(ch: Client, person: Person, out: IO[bytes]) -> int:
    ids = sorted(v for i in person.identifiers if i.type in ("user_id", "anonymous_id") for v in [i.value])
    count = 0
    for line in _lines(ch.raw_stream(_EVENTS, parameters={"ids": ids})):
        out.write(b"," + line if count else line)
        count += 1
    return count


def _lines(chunks: Any) -> Iterator[bytes]:
    """Whole JSONEachRow lines from a stream of arbitrary byte chunks."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line)
    if rest.strip():
        yield rest
