"""Sources: the write keys websites and apps send with, and their ingestion policy."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from activation.admin.errors import ApiError, not_found
from activation.db import Database

IP_POLICIES = ("keep", "truncate", "drop")
DEFAULT_RATE_LIMIT_PER_S = 1000
COLUMNS = [
    "id",
    "name",
    "write_key",
    "allowed_origins",
    "ip_policy",
    "rate_limit_per_s",
    "retention_days",
    "enabled",
    "required_consent_category",
    "deleted",
    "created_at",
    "updated_at",
    "version",
]
_EDITABLE = {
    "name": str,
    "allowed_origins": list,
    "ip_policy": str,
    "rate_limit_per_s": int,
    "retention_days": int,
    "enabled": bool,
    "required_consent_category": str,
}
_CATEGORY = re.compile(r"[A-Za-z0-9_.:-]{0,64}")


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


def validate(fields: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Check editable fields; raise ApiError with per-field messages."""
    errors: dict[str, str] = {}
    unknown = set(fields) - set(_EDITABLE)
    errors.update({name: "unknown field" for name in unknown})
    for name, kind in _EDITABLE.items():
        if name in fields and (
            not isinstance(fields[name], kind) or isinstance(fields[name], bool) != (kind is bool)
        ):
            errors[name] = f"must be {kind.__name__}"
    if creating and not str(fields.get("name", "")).strip():
        errors["name"] = "required"
    if "ip_policy" in fields and fields["ip_policy"] not in IP_POLICIES:
        errors["ip_policy"] = f"must be one of {list(IP_POLICIES)}"
    if isinstance(fields.get("allowed_origins"), list) and not all(
        isinstance(o, str) for o in fields["allowed_origins"]
    ):
        errors["allowed_origins"] = "must be a list of origins"
    for name in ("rate_limit_per_s", "retention_days"):
        if isinstance(fields.get(name), int) and not 0 <= fields[name] <= 1_000_000:
            errors[name] = "must be between 0 and 1000000"
    category = fields.get("required_consent_category")
    if isinstance(category, str) and not _CATEGORY.fullmatch(category):
        errors["required_consent_category"] = "must be a consent category name (letters, digits, _.:-; ≤ 64)"
    if errors:
        raise ApiError(400, "invalid_source", "the source has invalid fields", errors)
    return fields


EXTENSION_FIELDS = ("type", "config", "credentials")
Rows = list[dict[str, Any]]


class SourceExtension(Protocol):
    """Source kinds beyond tracking (CRM pulls: activation/crm/sources.py): `type`, `config` and
    write-only `credentials`, validated before the source is written and stored after it."""

    async def check(self, source_id: str, fields: dict[str, Any], creating: bool) -> None: ...

    async def save(self, source_id: str, fields: dict[str, Any]) -> None: ...

    async def describe(self, source_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class SourceStore:
    """`notify` is awaited after every write: the composition root publishes it to every collector's
    source cache (rotation and disabling take effect everywhere at once)."""

    def __init__(
        self,
        db: Database,
        notify: Callable[[], Awaitable[object]] | None = None,
        extension: SourceExtension | None = None,
    ) -> None:
        self.db, self.notify, self.extension = db, notify, extension

    async def get(self, source_id: str) -> dict[str, Any]:
        rows = await self.db.dicts(
            "SELECT * FROM sources FINAL WHERE id = {id:String} AND deleted = 0", {"id": source_id}
        )
        if not rows:
            raise not_found("source")
        return (await self._described(rows))[0]

    async def list(self, after: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.db.dicts(
            "SELECT * FROM sources FINAL WHERE deleted = 0 AND id > {after:String} "
            "ORDER BY id LIMIT {n:UInt32}",
            {"after": after, "n": limit},
        )
        return await self._described(rows)

    async def _described(self, rows: Rows) -> Rows:
        if self.extension is None or not rows:
            return rows
        extra = await self.extension.describe([r["id"] for r in rows])
        return [{**r, **extra.get(r["id"], {})} for r in rows]

    async def _split(self, source_id: str, fields: dict[str, Any], creating: bool) -> dict[str, Any]:
        """Take the extension's fields out of `fields` and check them (400 when no extension)."""
        ext = {k: fields.pop(k) for k in EXTENSION_FIELDS if k in fields}
        if self.extension is not None:
            await self.extension.check(source_id, ext, creating)
        elif ext.get("type", "tracking") != "tracking" or set(ext) - {"type"}:
            raise ApiError(400, "invalid_source", "the source has invalid fields", {"type": "unsupported"})
        return ext

    async def _write(self, source: dict[str, Any]) -> dict[str, Any]:
        source = {**source, "updated_at": datetime.now(UTC), "version": time.time_ns()}
        await self.db.insert("sources", [[source[c] for c in COLUMNS]], COLUMNS)
        if self.notify is not None:
            await self.notify()
        return source

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        source_id, fields = "src_" + uuid.uuid4().hex[:20], dict(fields)
        ext = await self._split(source_id, fields, creating=True)
        validate(fields, creating=True)
        now = datetime.now(UTC)
        source = {
            "id": source_id,
            "write_key": new_write_key(),
            "allowed_origins": [],
            "ip_policy": "keep",
            "rate_limit_per_s": DEFAULT_RATE_LIMIT_PER_S,
            "retention_days": 0,
            "enabled": True,
            "required_consent_category": "",
            "deleted": 0,
            "created_at": now,
            **fields,
        }
        source["name"] = str(source["name"]).strip()
        if self.extension is not None and ext:
            await self.extension.save(source_id, ext)
        return (await self._described([await self._write(source)]))[0]

    async def update(self, source_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        current, fields = await self.get(source_id), dict(fields)
        ext = await self._split(source_id, fields, creating=False)
        validate(fields, creating=False)
        if self.extension is not None and ext:
            await self.extension.save(source_id, ext)
        written = await self._write({k: v for k, v in {**current, **fields}.items() if k in COLUMNS})
        return (await self._described([written]))[0]

    async def rotate_key(self, source_id: str) -> dict[str, Any]:
        current = await self.get(source_id)
        written = await self._write({**_stored(current), "write_key": new_write_key()})
        return {**current, **written}

    async def delete(self, source_id: str) -> None:
        await self._write({**_stored(await self.get(source_id)), "deleted": 1, "enabled": False})

    async def ensure_named(self, name: str) -> dict[str, Any]:
        """The live source called `name`, created on first use (system sources)."""
        rows = await self.db.dicts(
            "SELECT * FROM sources FINAL WHERE deleted = 0 AND name = {n:String} ORDER BY created_at LIMIT 1",
            {"n": name},
        )
        return rows[0] if rows else await self.create({"name": name})

    async def ensure_default(self) -> dict[str, Any] | None:
        """Create the ready-made default source on first start; return it if created now."""
        if (await self.db.rows("SELECT count() FROM sources FINAL"))[0][0]:
            return None
        return await self.create({"name": "Default"})


def _stored(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k in COLUMNS}


def public(source: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a source (CRM sources add `config` and `credential_names`, never secrets)."""
    crm: dict[str, Any] = {k: source[k] for k in ("config", "credential_names") if k in source}
    return {
        "id": source["id"],
        "name": source["name"],
        "type": source.get("type", "tracking"),
        **crm,
        "write_key": source["write_key"],
        "allowed_origins": list(source["allowed_origins"]),
        "ip_policy": source["ip_policy"],
        "rate_limit_per_s": int(source["rate_limit_per_s"]),
        "retention_days": int(source["retention_days"]),
        "enabled": bool(source["enabled"]),
        "required_consent_category": source.get("required_consent_category", ""),
        "created_at": source["created_at"],
        "updated_at": source["updated_at"],
    }
