"""Pure rules of a connection: its filter, its mapping, the Segment shape of a stored event, the
person an event belongs to (the unit of ordering) and the consent check.

filter  `{"types": ["track", ...], "events": ["Order Completed", ...]}` — each list optional; an empty
        or missing list allows everything; `events` applies to track names (and page/screen names).
mapping `{"events": {"Order Completed": "purchase"}, "properties": {"total": "value"}}` — renames of
        track event names and of top-level property (or trait) keys, applied before the platform's
        own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

TYPES = ("track", "page", "screen", "identify", "group", "alias")
MAX_ENTRIES = 200


def _strings(raw: Any, name: str, errors: dict[str, str]) -> list[str]:
    ok = isinstance(raw, list) and len(raw) <= MAX_ENTRIES
    if not ok or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in raw):
        errors[name] = f"must be a list of at most {MAX_ENTRIES} non-empty strings"
        return []
    return list(dict.fromkeys(raw))


def read_filter(raw: Any) -> tuple[dict[str, list[str]], dict[str, str]]:
    errors: dict[str, str] = {}
    if raw is None:
        return {}, errors
    if not isinstance(raw, dict):
        return {}, {"filter": "must be an object with optional types and events lists"}
    errors.update({f"filter.{k}": "unknown field" for k in raw if k not in ("types", "events")})
    out: dict[str, list[str]] = {}
    for key in ("types", "events"):
        if key in raw:
            out[key] = _strings(raw[key], f"filter.{key}", errors)
    bad = [t for t in out.get("types", []) if t not in TYPES]
    if bad:
        errors["filter.types"] = f"unknown types {', '.join(bad)}; use {', '.join(TYPES)}"
    return out, errors


def read_mapping(raw: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    errors: dict[str, str] = {}
    if raw is None:
        return {}, errors
    if not isinstance(raw, dict):
        return {}, {"mapping": "must be an object with optional events and properties objects"}
    errors.update({f"mapping.{k}": "unknown field" for k in raw if k not in ("events", "properties")})
    out: dict[str, dict[str, str]] = {}
    for key in ("events", "properties"):
        value = raw.get(key, {})
        pairs = isinstance(value, dict) and len(value) <= MAX_ENTRIES
        if not pairs or not all(isinstance(v, str) and v and k for k, v in value.items()):
            errors[f"mapping.{key}"] = f"must be an object of at most {MAX_ENTRIES} name → new name"
        elif value:
            out[key] = dict(value)
    return out, errors


@dataclass(frozen=True)
class Route:
    """One enabled connection with what the reader needs about its destination."""

    connection_id: str
    source_id: str
    destination_id: str
    destination_type: str
    filter: dict[str, list[str]]
    mapping: dict[str, dict[str, str]]
    consent_category: str = ""
    since: datetime = datetime(1970, 1, 1, tzinfo=UTC)  # events stored before are not forwarded live
    changed_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)  # newest update of the connection or destination
    # [from, floor) of inserted_at its catch-up covers (activation.connections.catchup), if it had one
    catchup: tuple[datetime, datetime] | None = None


def matches(filter_: dict[str, list[str]], event: dict[str, Any]) -> bool:
    types, names = filter_.get("types"), filter_.get("events")
    if types and event.get("type") not in types:
        return False
    if names:
        name = event.get("event") if event.get("type") == "track" else event.get("name")
        return name in names
    return True


def mapped(mapping: dict[str, dict[str, str]], event: dict[str, Any]) -> dict[str, Any]:
    """The event with the connection's renames applied (a new dict; the input is untouched)."""
    out = dict(event)
    names = mapping.get("events", {})
    if out.get("type") == "track" and out.get("event") in names:
        out["event"] = names[out["event"]]
    renames = mapping.get("properties", {})
    for key in ("properties", "traits"):
        if renames and isinstance(out.get(key), dict):
            out[key] = {renames.get(k, k): v for k, v in out[key].items()}
    return out


def person(event: dict[str, Any]) -> str:
    user = event.get("userId")
    return f"u:{user}" if user else f"a:{event.get('anonymousId') or ''}"


def consent_granted(consent: str, category: str) -> bool | None:
    """True/False from an event's consent JSON (categoryPreferences), None when it says nothing."""
    if not consent:
        return None
    try:
        value = orjson.loads(consent)
    except orjson.JSONDecodeError:
        return None
    granted = value.get(category) if isinstance(value, dict) else None
    return granted if isinstance(granted, bool) else None


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json(text: str) -> Any:
    try:
        return orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}


EVENT_COLUMNS = (
    "source_id, message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id,"
    " timestamp, sent_at, received_at, properties, traits, context, consent, inserted_at"
)
_KEYS = (
    ("event", "event"),
    ("name", "name"),
    ("category", "category"),
    ("userId", "user_id"),
    ("anonymousId", "anonymous_id"),
    ("groupId", "group_id"),
    ("previousId", "previous_id"),
)


def segment_event(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event in Segment's shape (what connections send, before mapping)."""
    event: dict[str, Any] = {"messageId": row["message_id"], "type": row["type"]}
    event.update({key: row[column] for key, column in _KEYS if row[column]})
    event["timestamp"] = _iso(row["timestamp"])
    if row["sent_at"] is not None:
        event["sentAt"] = _iso(row["sent_at"])
    event["receivedAt"] = _iso(row["received_at"])
    event["context"] = _json(row["context"])
    if row["type"] in ("identify", "group"):
        event["traits"] = _json(row["traits"])
    elif row["type"] != "alias":
        event["properties"] = _json(row["properties"])
    return event
