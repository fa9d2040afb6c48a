"""The event debugger: stored events of a source, newest first, in Segment shape plus an
`enrichment` object; keyset cursors walk every stored event exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from activation.admin.cursor import decode_cursor, encode_cursor
from activation.admin.errors import ApiError
from activation.db import Database

_EVENT_COLUMNS = (
    "message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id, timestamp, "
    "original_timestamp, sent_at, received_at, timestamp_clamped, properties, traits, context, integrations, "
    "ua_browser, ua_browser_version, ua_os, ua_os_version, ua_device_type, ua_device_brand, ua_device_model, "
    "is_bot, geo_country, geo_region, geo_city, geo_postal_code, geo_timezone, geo_latitude, geo_longitude, "
    "geo_asn, geo_as_org, utm_source, utm_medium, utm_campaign, utm_term, utm_content, click_id_type, "
    "click_id, "
    "referrer_domain, referrer_medium, ip"
)
_CURSOR_TIME = "%Y-%m-%d %H:%M:%S.%f"
_REJECTED_COLUMNS = "received_at, reason, detail, batch_index, message_id, payload"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json(text: str) -> Any:
    return orjson.loads(text) if text else {}


def segment_shape(row: dict[str, Any]) -> dict[str, Any]:
    kind = row["type"]
    event: dict[str, Any] = {"messageId": row["message_id"], "type": kind}
    for key, column in (
        ("event", "event"),
        ("name", "name"),
        ("category", "category"),
        ("userId", "user_id"),
        ("anonymousId", "anonymous_id"),
        ("groupId", "group_id"),
        ("previousId", "previous_id"),
    ):
        if row[column]:
            event[key] = row[column]
    event.update(
        {
            "timestamp": _iso(row["timestamp"]),
            "originalTimestamp": _iso(row["original_timestamp"]),
            "sentAt": _iso(row["sent_at"]),
            "receivedAt": _iso(row["received_at"]),
            "context": _json(row["context"]),
            "integrations": _json(row["integrations"]),
        }
    )
    if kind in ("identify", "group"):
        event["traits"] = _json(row["traits"])
    else:
        event["properties"] = _json(row["properties"])
    event["enrichment"] = _enrichment(row)
    return event


def _enrichment(row: dict[str, Any]) -> dict[str, Any]:
    def pick(*names: str) -> dict[str, Any]:
        return {n.split("_", 1)[1]: row[n] for n in names}

    return {
        "userAgent": pick(
            "ua_browser",
            "ua_browser_version",
            "ua_os",
            "ua_os_version",
            "ua_device_type",
            "ua_device_brand",
            "ua_device_model",
        ),
        "geo": pick(
            "geo_country",
            "geo_region",
            "geo_city",
            "geo_postal_code",
            "geo_timezone",
            "geo_latitude",
            "geo_longitude",
            "geo_asn",
            "geo_as_org",
        ),
        "campaign": pick(
            "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "click_id_type", "click_id"
        ),
        "referrer": {"domain": row["referrer_domain"], "medium": row["referrer_medium"]},
        "isBot": bool(row["is_bot"]),
        "timestampClamped": bool(row["timestamp_clamped"]),
        "ip": row["ip"],
    }


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    """The (received_at, tiebreak) a cursor holds; a forged one is a 400, never a failing query."""
    key = decode_cursor(cursor, 2)
    if key is None:
        return None
    moment, tiebreak = key
    try:
        if not isinstance(moment, str) or not isinstance(tiebreak, str):
            raise ValueError(key)
        position = datetime.strptime(moment, _CURSOR_TIME).replace(tzinfo=UTC)
        if not 1900 <= position.year <= 2299:  # DateTime64's range
            raise ValueError(moment)
        return position, tiebreak
    except ValueError:
        raise ApiError(400, "invalid_cursor", "cursor is not valid", {"cursor": "malformed"}) from None


async def _newest_first(
    db: Database, table: str, columns: str, tiebreak: str, source_id: str, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a source's rows, newest first, keyed by (received_at, `tiebreak`)."""
    key = _position(cursor)
    where = "source_id = {s:String}"
    params: dict[str, Any] = {"s": source_id, "n": limit}
    if key is not None:
        where += f" AND (received_at, {tiebreak}) < ({{t:DateTime64(3, 'UTC')}}, {{k:String}})"
        params.update(t=key[0], k=key[1])
    rows = await db.dicts(
        f"SELECT {columns}, {tiebreak} AS _key FROM {table} WHERE {where} "
        f"ORDER BY received_at DESC, {tiebreak} DESC LIMIT {{n:UInt32}}",
        params,
    )
    if len(rows) < limit:
        return rows, None
    last = rows[-1]
    return rows, encode_cursor([last["received_at"].strftime(_CURSOR_TIME)[:-3], last["_key"]])


async def list_events(db: Database, source_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
    rows, next_cursor = await _newest_first(
        db, "events", _EVENT_COLUMNS, "message_id", source_id, cursor, limit
    )
    return {"data": [segment_shape(r) for r in rows], "next_cursor": next_cursor}


async def list_rejected(db: Database, source_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
    rows, next_cursor = await _newest_first(
        db, "rejected_events", _REJECTED_COLUMNS, "ingest_id", source_id, cursor, limit
    )
    data = [
        {**{k: v for k, v in r.items() if k != "_key"}, "received_at": _iso(r["received_at"])} for r in rows
    ]
    return {"data": data, "next_cursor": next_cursor}
