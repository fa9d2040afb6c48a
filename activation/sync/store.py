"""The `destinations` table: versioned rows read with FINAL; credentials stay encrypted here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from activation.db import Database
from activation.destinations import Credentials
from activation.sync.crypto import CredentialCipher

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = (
    "id",
    "type",
    "name",
    "config",
    "credentials",
    "credential_names",
    "consent_category",
    "enabled",
    "field_mapping",
    "identifier_priority",
    "deleted",
    "created_at",
    "updated_at",
    "version",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM destinations FINAL WHERE deleted = 0"


@dataclass(frozen=True)
class DestinationRecord:
    """One configured destination. `sealed_credentials` is ciphertext; use `DestinationStore.credentials`."""

    id: str
    type: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    sealed_credentials: str = field(default="", repr=False)
    credential_names: tuple[str, ...] = ()
    consent_category: str = ""
    enabled: bool = True
    field_mapping: dict[str, str] = field(default_factory=dict)
    identifier_priority: tuple[str, ...] = ()
    deleted: bool = False
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH
    version: int = 0

    def public(self) -> dict[str, Any]:
        """The API view: every field except the credentials, whose names alone are shown."""
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "config": self.config,
            "credential_names": list(self.credential_names),
            "consent_category": self.consent_category or None,
            "enabled": self.enabled,
            "field_mapping": self.field_mapping,
            "identifier_priority": list(self.identifier_priority),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _row(record: DestinationRecord) -> list[Any]:
    return [
        record.id,
        record.type,
        record.name,
        orjson.dumps(record.config).decode(),
        record.sealed_credentials,
        list(record.credential_names),
        record.consent_category,
        int(record.enabled),
        orjson.dumps(record.field_mapping).decode(),
        list(record.identifier_priority),
        int(record.deleted),
        record.created_at,
        record.updated_at,
        record.version,
    ]


def _record(row: dict[str, Any]) -> DestinationRecord:
    return DestinationRecord(
        id=row["id"],
        type=row["type"],
        name=row["name"],
        config=orjson.loads(row["config"] or "{}"),
        sealed_credentials=row["credentials"],
        credential_names=tuple(row["credential_names"]),
        consent_category=row["consent_category"],
        enabled=bool(row["enabled"]),
        field_mapping=orjson.loads(row["field_mapping"] or "{}"),
        identifier_priority=tuple(row["identifier_priority"]),
        deleted=bool(row["deleted"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        version=int(row["version"]),
    )


def _ms(value: datetime) -> datetime:
    """The precision of DateTime64(3): what a read returns equals what was written."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DestinationStore:
    def __init__(self, db: Database, cipher: CredentialCipher) -> None:
        self.db = db
        self.cipher = cipher

    async def get(self, destination_id: str) -> DestinationRecord | None:
        rows = await self.db.dicts(_SELECT + " AND id = {id:String}", {"id": destination_id})
        return _record(rows[0]) if rows else None

    async def list(self, after: str, limit: int) -> list[DestinationRecord]:
        sql = _SELECT + " AND id > {after:String} ORDER BY id LIMIT {n:UInt32}"
        return [_record(r) for r in await self.db.dicts(sql, {"after": after, "n": limit})]

    def credentials(self, record: DestinationRecord) -> Credentials:
        return Credentials(self.cipher.decrypt(record.sealed_credentials, record.id))

    def seal(self, record: DestinationRecord, credentials: Credentials) -> DestinationRecord:
        sealed = self.cipher.encrypt(dict(credentials), record.id)
        return replace(record, sealed_credentials=sealed, credential_names=tuple(sorted(credentials)))

    async def save(self, record: DestinationRecord) -> DestinationRecord:
        now = _ms(datetime.now(UTC))
        version = max(time.time_ns(), record.version + 1)
        saved = replace(record, created_at=_ms(record.created_at), updated_at=now, version=version)
        await self.db.insert("destinations", [_row(saved)], COLUMNS)
        return saved

    async def save_credentials(
        self, record: DestinationRecord, credentials: Credentials
    ) -> DestinationRecord:
        """Persist refreshed credentials (encrypted) on the newest version of the row."""
        current = await self.get(record.id) or record
        return await self.save(self.seal(current, credentials))
