"""Erasing a person from the two tables the collector owns, `events` and `rejected_events`
(privacy, SPEC §9). The composition root hands these to the privacy job; activation/ never
imports the collector, so the person arrives as plain (type, value) pairs.

An event belongs to the person when one of its identifier columns holds one of their ids, or its
raw copy quotes one of their emails or phones as a JSON string (an address in `properties` of an
event sent under another id). Rejected events were never parsed: their truncated payload copy is
searched for any of the person's values as a quoted JSON string, which may also take another
person's rejected row that quotes the same value — acceptable for diagnostics kept 30 days.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from clickhouse_connect.driver.client import Client

from clickhouse.erase import erase, mentions

_ID_TYPES = ("user_id", "anonymous_id", "previous_id")
_QUOTED_TYPES = ("email", "phone")


def _quoted(values: Collection[str]) -> list[str]:
    return sorted({f'"{v}"' for v in values if v})


def forget_events(ch: Client, identifiers: Collection[tuple[str, str]]) -> dict[str, int]:
    ids = sorted({v for t, v in identifiers if t in _ID_TYPES and v})
    params: dict[str, Any] = {
        "ids": ids,
        "devices": sorted({v for t, v in identifiers if t == "device_id" and v}),
        "ads": sorted({v for t, v in identifiers if t == "advertising_id" and v}),
    }
    where = (
        "user_id IN {ids:Array(String)} OR anonymous_id IN {ids:Array(String)}"
        " OR previous_id IN {ids:Array(String)} OR device_id IN {devices:Array(String)}"
        " OR advertising_id IN {ads:Array(String)}"
    )
    quoted = _quoted([v for t, v in identifiers if t in _QUOTED_TYPES])
    where += " OR " + mentions("raw", quoted, params, "quoted")
    return {"events": erase(ch, "events", where, params)}


def forget_rejected(ch: Client, identifiers: Collection[tuple[str, str]]) -> dict[str, int]:
    quoted = _quoted([v for _, v in identifiers])
    if not quoted:
        return {"rejected_events": 0}
    params: dict[str, Any] = {}
    where = mentions("payload", quoted, params, "quoted")
    return {"rejected_events": erase(ch, "rejected_events", where, params)}


def forget(ch: Client, identifiers: Collection[tuple[str, str]]) -> dict[str, int]:
    """Erase the person's events and rejected events; rows removed per table."""
    return {**forget_events(ch, identifiers), **forget_rejected(ch, identifiers)}
