"""Handlers for /admin/v1/destinations: create, list, read, update, delete and test.

Every outbound URL a config names is checked with `check_url` against the allow-list at create,
update and test (send-time checks happen in the session). At create and update a name that does not
resolve yet is accepted — nothing is contacted then, and the send-time resolver vets it — but every
other refusal is a 400. Credentials are write-only: responses carry only their names. An update that
changes where credentials are sent (any config key that moves an `endpoint_urls` entry, such as
`base_url` or `token_url`) must re-enter every stored credential in the same request (400 otherwise).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError, json_body, json_response, not_found, page_limit
from activation.destinations import REGISTRY, Credentials, DestinationError, SupportsConnectionTest
from activation.net import UnsafeDestination, check_url
from activation.sync import freshness
from activation.sync.context import SyncContext
from activation.sync.crypto import CredentialsUnreadable
from activation.sync.redact import RedactingClient, Redactor
from activation.sync.store import DestinationRecord, DestinationStore
from activation.sync.validation import (
    check_type_rules,
    merge_credentials,
    read_body,
    require_reentered_credentials,
)


async def check_endpoints(ctx: SyncContext, kind: str, config: dict[str, Any], *, strict: bool) -> None:
    for url in REGISTRY[kind].endpoint_urls(config):
        try:
            await check_url(url, ctx.allow, resolve=ctx.resolve)
        except UnsafeDestination as exc:
            if exc.reason == "unresolvable" and not strict:
                continue
            message = f"outbound address refused: {exc.detail}"
            raise ApiError(400, "unsafe_destination", message, {"config": exc.reason}) from None


async def _load(store: DestinationStore, destination_id: str) -> DestinationRecord:
    record = await store.get(destination_id)
    if record is None:
        raise not_found("destination")
    return record


def _credentials(store: DestinationStore, record: DestinationRecord) -> Credentials:
    try:
        return store.credentials(record)
    except CredentialsUnreadable as exc:
        raise ApiError(409, "credentials_unreadable", f"{exc}; set new credentials") from None


async def create(ctx: SyncContext, request: Request) -> Response:
    fields = read_body(await json_body(request), creating=True)
    credentials = merge_credentials({}, fields.get("credentials", {}))
    check_type_rules(fields["type"], fields["config"], credentials)
    await check_endpoints(ctx, fields["type"], fields["config"], strict=False)
    store = ctx.store()
    record = DestinationRecord(
        id="dst_" + uuid.uuid4().hex[:20],
        type=fields["type"],
        name=fields["name"].strip(),
        config=fields["config"],
        consent_category=fields.get("consent_category") or "",
        enabled=fields.get("enabled", True),
        field_mapping=fields.get("field_mapping", {}),
        identifier_priority=tuple(fields.get("identifier_priority", ())),
        created_at=datetime.now(UTC),
    )
    saved = await store.save(store.seal(record, credentials))
    return json_response(saved.public(), 201)


async def update(ctx: SyncContext, request: Request) -> Response:
    fields = read_body(await json_body(request), creating=False)
    store = ctx.store()
    record = await _load(store, request.path_params["id"])
    config = fields.get("config", record.config)
    changes = fields.get("credentials")
    credentials = merge_credentials(_credentials(store, record), changes or {})
    check_type_rules(record.type, config, credentials)
    await check_endpoints(ctx, record.type, config, strict=False)
    require_reentered_credentials(record.type, record.config, config, record.credential_names, changes)
    updated = replace(
        record,
        name=fields.get("name", record.name).strip(),
        config=config,
        consent_category=fields.get("consent_category", record.consent_category) or "",
        enabled=fields.get("enabled", record.enabled),
        field_mapping=fields.get("field_mapping", record.field_mapping),
        identifier_priority=tuple(fields.get("identifier_priority", record.identifier_priority)),
    )
    if changes is not None:
        updated = store.seal(updated, credentials)
    return json_response((await store.save(updated)).public())


async def read(ctx: SyncContext, request: Request) -> Response:
    record = await _load(ctx.store(), request.path_params["id"])
    lag = await freshness.read(ctx.redis, record.id) if ctx.redis is not None else None
    return json_response({**record.public(), "freshness": lag})


async def delete(ctx: SyncContext, request: Request) -> Response:
    store = ctx.store()
    record = await _load(store, request.path_params["id"])
    await store.save(replace(record, deleted=True, enabled=False, sealed_credentials="", credential_names=()))
    return Response(status_code=204)


async def list_all(ctx: SyncContext, request: Request) -> Response:
    limit = page_limit(request)
    key = decode_cursor(request.query_params.get("cursor"), 1)
    records = await ctx.store().list(str(key[0]) if key else "", limit)
    next_cursor = encode_cursor([records[-1].id]) if len(records) == limit else None
    return json_response({"data": [r.public() for r in records], "next_cursor": next_cursor})


async def test(ctx: SyncContext, request: Request) -> Response:
    store = ctx.store()
    record = await _load(store, request.path_params["id"])
    await check_endpoints(ctx, record.type, record.config, strict=True)
    destination = REGISTRY[record.type]
    if not isinstance(destination, SupportsConnectionTest):
        return json_response({"ok": True, "tested": False})
    credentials = _credentials(store, record)
    async with ctx.http(ctx.allow, ctx.request_timeout_s) as session:
        try:
            await destination.test_connection(
                RedactingClient(session, credentials.values), credentials, record.config
            )
        except DestinationError as exc:
            error = {"kind": type(exc).__name__, "reason": Redactor(credentials.values())(exc.reason)}
            return json_response({"ok": False, "tested": True, "error": error})
    return json_response({"ok": True, "tested": True})
