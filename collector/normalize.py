"""Validate one Segment message and normalise it: ids, type, batch defaults, timestamps.

Pure: takes the parsed item and the request facts, returns an `Event` or a `Rejection` with a
reason code. Nothing here touches the network or storage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.limits import MERGED, BatchFootprint, merged_problem
from collector.row import object_at
from collector.timestamps import BadTimestamp, Timing, corrected, parse_timestamp

TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
SHORT_TYPES = {"i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group", "a": "alias"}
MAX_MESSAGE_ID = 100
MAX_ID = 1024
_OBJECT_FIELDS = ("properties", "traits", *MERGED)


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str
    message_id: str = ""


@dataclass(frozen=True)
class Defaults:
    """What a batch (or the request) gives every item: context, integrations, sentAt."""

    context: dict[str, Any] = field(default_factory=dict)
    integrations: dict[str, Any] = field(default_factory=dict)
    sent_at: Any = None
    footprint: BatchFootprint = field(default_factory=BatchFootprint)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Defaults:
        """The defaults a batch body gives its items, measured once for the per-event limits."""
        context, integrations = object_at(body, "context"), object_at(body, "integrations")
        footprint = BatchFootprint.of({"context": context, "integrations": integrations})
        return cls(context, integrations, body.get("sentAt"), footprint)


@dataclass
class Event:
    """A normalised message in Segment shape plus what the row builder needs."""

    message: dict[str, Any]
    timing: Timing
    received_at: datetime
    raw: bytes
    item: dict[str, Any]  # the item as parsed, to rebuild `raw` when a step changes what it holds


def _string_id(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if type(value) is str:  # the common case first
        text = value.strip()
        if len(text) > MAX_ID:
            raise ValueError(f"invalid_{key}")
        return text
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"invalid_{key}")
    text = str(value).strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_ID:
        raise ValueError(f"invalid_{key}")
    return text


def _required(kind: str, ids: dict[str, str], item: dict[str, Any]) -> str | None:
    """The reason code for a missing required field, or None."""
    if kind == "alias":
        if not ids["previousId"]:
            return "missing_previous_id"
        return None if ids["userId"] else "missing_user_id"
    if not ids["userId"] and not ids["anonymousId"]:
        return "no_user_anon_id"
    if kind == "track" and not (isinstance(item.get("event"), str) and item["event"].strip()):
        return "missing_event"
    if kind == "group" and not ids["groupId"]:
        return "missing_group_id"
    return None


def _message_type(item: dict[str, Any], path_type: str | None) -> str | None:
    kind = path_type or item.get("type")
    if not isinstance(kind, str):
        return None
    kind = SHORT_TYPES.get(kind, kind).lower()
    return kind if kind in TYPES else None


def normalize(
    item: Any, raw: bytes, defaults: Defaults, received_at: datetime, path_type: str | None, historical: bool
) -> Event | Rejection:
    if not isinstance(item, dict):
        return Rejection("not_an_object", "each event must be a JSON object")
    message_id = message_id_of(item)
    problem = _problem(item, raw, message_id, defaults)
    if problem:
        return Rejection(problem[0], problem[1], message_id[:MAX_MESSAGE_ID])
    kind = _message_type(item, path_type)
    if kind is None:
        return Rejection("invalid_type", f"type must be one of {sorted(TYPES)}", message_id)
    try:
        ids = {k: _string_id(item, k) for k in ("userId", "anonymousId", "groupId", "previousId")}
    except ValueError as exc:
        return Rejection(str(exc), "ids must be strings or numbers up to 1024 characters", message_id)
    missing = _required(kind, ids, item)
    if missing:
        return Rejection(missing, f"a {kind} call needs this field", message_id)
    stamp = item.get("timestamp")
    try:
        sent_at = parse_timestamp(item.get("sentAt", defaults.sent_at))
        original = parse_timestamp(item.get("originalTimestamp") if stamp is None or stamp == "" else stamp)
    except BadTimestamp as exc:
        return Rejection("invalid_timestamp", str(exc), message_id)
    timing = corrected(received_at, original, sent_at, not historical)
    message = _message(item, kind, ids, message_id or str(uuid.uuid4()), defaults)
    return Event(message, timing, received_at, raw, item)


def message_id_of(item: Any) -> str:
    """The item's messageId as text ("" when absent or not a string or integer)."""
    value = item.get("messageId") if isinstance(item, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else ""


def _problem(item: dict[str, Any], raw: bytes, message_id: str, defaults: Defaults) -> tuple[str, str] | None:
    if len(message_id) > MAX_MESSAGE_ID:
        return "message_id_too_long", f"messageId may be at most {MAX_MESSAGE_ID} characters"
    for key in _OBJECT_FIELDS:
        if item.get(key) is not None and not isinstance(item[key], dict):
            return f"invalid_{key}", f"{key} must be an object"
    return merged_problem(item, raw, defaults.footprint)


def _message(
    item: dict[str, Any], kind: str, ids: dict[str, str], message_id: str, defaults: Defaults
) -> dict[str, Any]:
    context = {**defaults.context, **(item.get("context") or {})}
    message: dict[str, Any] = {
        "messageId": message_id,
        "type": kind,
        **{k: v for k, v in ids.items() if v},
        "context": context,
        "integrations": {**defaults.integrations, **(item.get("integrations") or {})},
    }
    if kind == "track":
        message["event"] = item["event"].strip()
    if kind in ("page", "screen"):
        for key in ("name", "category"):
            if isinstance(item.get(key), str):
                message[key] = item[key]
    if kind in ("identify", "group"):
        message["traits"] = item.get("traits") or {}
        if kind == "identify" and not message["traits"] and isinstance(context.get("traits"), dict):
            message["traits"] = context["traits"]
    else:
        message["properties"] = item.get("properties") or {}
    return message
