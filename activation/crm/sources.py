"""The CRM side of sources (`crm_sources`): type, config and write-only credentials.

Plugged into the admin `SourceStore` as its extension: `check` validates `type`, `config` and
`credentials` (the platform's own rules, then every endpoint against the outbound allow-list, as
destinations do), `save` seals credentials with the destination cipher (AES-GCM, bound to the source
id) and `describe` adds `type`, `config` and `credential_names` to the API view — never a secret.
Changing where credentials go (`base_url`, `instance_url`, a token URL) requires re-entering them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from activation.admin.errors import ApiError
from activation.crm.platforms import PLATFORMS, SOURCE_TYPES
from activation.db import Database
from activation.destinations import Credentials
from activation.net import AllowList, Resolve, UnsafeDestination, check_url, system_resolve
from activation.sync.crypto import CredentialCipher

FIELDS = ("type", "config", "credentials")
_COLUMNS = ("source_id", "type", "config", "credentials", "credential_names", "updated_at", "version")
_SELECT = f"SELECT {', '.join(_COLUMNS[:-2])} FROM crm_sources FINAL"


@dataclass(frozen=True)
class CrmSource:
    source_id: str
    type: str
    config: dict[str, Any]
    sealed: str
    credential_names: tuple[str, ...]


def _invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(400, "invalid_source", "the source has invalid fields", fields)


class CrmSourceSettings:
    def __init__(
        self, db: Database, secret_key: str, allow: AllowList, resolve: Resolve = system_resolve
    ) -> None:
        self.db, self.secret_key, self.allow, self.resolve = db, secret_key, allow, resolve

    def cipher(self) -> CredentialCipher:
        return CredentialCipher(self.secret_key)

    async def get(self, source_id: str) -> CrmSource | None:
        rows = await self.db.rows(_SELECT + " WHERE source_id = {s:String}", {"s": source_id})
        return _source(rows[0]) if rows else None

    async def all(self) -> list[CrmSource]:
        return [_source(r) for r in await self.db.rows(_SELECT + " ORDER BY source_id")]

    def credentials(self, source: CrmSource) -> Credentials:
        return Credentials(self.cipher().decrypt(source.sealed, source.source_id))

    async def describe(self, source_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self.db.rows(_SELECT + " WHERE source_id IN {s:Array(String)}", {"s": list(source_ids)})
        return {s.source_id: public(s) for s in map(_source, rows)}

    async def check(self, source_id: str, fields: Mapping[str, Any], creating: bool) -> None:
        """Raise ApiError 400 when type, config or credentials do not validate (values never quoted)."""
        current = await self.get(source_id) if not creating else None
        kind = fields.get("type", current.type if current else "tracking")
        if not creating and "type" in fields and kind != (current.type if current else "tracking"):
            raise _invalid({"type": "cannot be changed; create a new source"})
        if kind not in SOURCE_TYPES:
            raise _invalid({"type": f"must be one of {', '.join(SOURCE_TYPES)}"})
        if kind == "tracking":
            extra = {k: "only for CRM sources" for k in ("config", "credentials") if k in fields}
            if extra:
                raise _invalid(extra)
            return
        config, credentials = self._merged(current, fields)
        platform = PLATFORMS[kind]
        errors = {f"config.{k}": v for k, v in platform.validate_config(config).items()}
        errors.update({f"credentials.{k}": v for k, v in platform.validate_credentials(credentials).items()})
        if current and platform.endpoint_urls(current.config) != platform.endpoint_urls(config):
            missing = sorted(set(current.credential_names) - set(_changes(fields)))
            if missing:
                errors["credentials"] = f"must re-enter {', '.join(missing)}: config changes where they go"
        if errors:
            raise _invalid(errors)
        await self._check_endpoints(platform.endpoint_urls(config))

    async def _check_endpoints(self, urls: list[str]) -> None:
        for url in urls:
            try:
                await check_url(url, self.allow, resolve=self.resolve)
            except UnsafeDestination as exc:
                if exc.reason != "unresolvable":
                    message = f"outbound address refused: {exc.detail}"
                    raise ApiError(400, "unsafe_destination", message, {"config": exc.reason}) from None

    def _merged(
        self, current: CrmSource | None, fields: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Credentials]:
        config = fields.get("config", current.config if current else {})
        if not isinstance(config, dict):
            raise _invalid({"config": "must be an object"})
        changes = _changes(fields)
        stored = dict(self.credentials(current)) if current else {}
        merged = {**stored, **{k: v for k, v in changes.items() if v is not None}}
        return config, Credentials({k: v for k, v in merged.items() if changes.get(k, v) is not None})

    async def save(self, source_id: str, fields: Mapping[str, Any]) -> None:
        """Store type/config/credentials (call after `check`); tracking sources store nothing."""
        current = await self.get(source_id)
        kind = fields.get("type", current.type if current else "tracking")
        if kind == "tracking":
            return
        config, credentials = self._merged(current, fields)
        sealed = self.cipher().encrypt(dict(credentials), source_id)
        row = [source_id, kind, orjson.dumps(config).decode(), sealed, sorted(credentials)]
        await self.db.insert("crm_sources", [[*row, datetime.now(UTC), time.time_ns()]], _COLUMNS)

    async def save_credentials(self, source: CrmSource, credentials: Credentials) -> None:
        """Persist refreshed tokens (encrypted) on the newest row."""
        current = await self.get(source.source_id) or source
        sealed = self.cipher().encrypt(dict(credentials), source.source_id)
        row = [
            current.source_id,
            current.type,
            orjson.dumps(current.config).decode(),
            sealed,
            sorted(credentials),
        ]
        await self.db.insert("crm_sources", [[*row, datetime.now(UTC), time.time_ns()]], _COLUMNS)


def _changes(fields: Mapping[str, Any]) -> dict[str, str | None]:
    raw = fields.get("credentials", {})
    ok = isinstance(raw, dict) and len(raw) <= 50
    ok = ok and all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in raw.items())
    if not ok:
        raise _invalid({"credentials": "must be an object of string values"})
    return dict(raw)


def _source(row: tuple[Any, ...]) -> CrmSource:
    return CrmSource(str(row[0]), str(row[1]), orjson.loads(row[2] or "{}"), str(row[3]), tuple(row[4]))


def public(source: CrmSource) -> dict[str, Any]:
    return {"type": source.type, "config": source.config, "credential_names": list(source.credential_names)}
