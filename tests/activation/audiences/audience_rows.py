"""Hand-built rows for the tables audiences read: events (0001's columns), identity and profiles.

Tests share one embedded ClickHouse with the rest of the suite, so every test works in its own
namespace: a unique prefix on ids and a `ns` trait that its definitions require.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences import store
from activation.audiences.parser import parse
from activation.audiences.store import Audience

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _names(text: str) -> list[str]:
    return text.split()


_STRING_COLUMNS = _names(
    "source_id message_id type event name category user_id anonymous_id group_id previous_id"
    " context integrations raw ip library_name library_version channel locale timezone user_agent"
    " page_url page_path page_referrer page_title page_search app_name app_version app_build"
    " app_namespace device_id advertising_id device_manufacturer device_model device_name device_type"
    " os_name os_version network_carrier ua_browser ua_browser_version ua_os ua_os_version"
    " ua_device_type ua_device_brand ua_device_model geo_country geo_region geo_city geo_postal_code"
    " geo_timezone geo_as_org utm_source utm_medium utm_campaign utm_term utm_content click_id_type"
    " click_id referrer_domain referrer_medium consent ingest_id"
)
_ZERO_COLUMNS = _names(
    "timestamp_clamped screen_width screen_height screen_density is_bot geo_asn retention_days"
)
_NULL_COLUMNS = _names("sent_at ad_tracking_enabled network_wifi network_cellular geo_latitude geo_longitude")
_JSON_COLUMNS = ("properties", "traits")
_TIME_COLUMNS = ("timestamp", "original_timestamp", "received_at")
EVENT_COLUMNS = [*_STRING_COLUMNS, *_ZERO_COLUMNS, *_NULL_COLUMNS, *_JSON_COLUMNS, *_TIME_COLUMNS]


def namespace() -> str:
    return uuid.uuid4().hex[:12]


def event_row(**values: Any) -> dict[str, Any]:
    """An events row with every 0001 column (except `inserted_at`, which has a default)."""
    row: dict[str, Any] = dict.fromkeys(_STRING_COLUMNS, "")
    row.update(dict.fromkeys(_ZERO_COLUMNS, 0))
    row.update(dict.fromkeys(_NULL_COLUMNS))
    row.update(source_id="src_test", type="track", message_id=uuid.uuid4().hex, properties="{}", traits="{}")
    row.update(dict.fromkeys(_TIME_COLUMNS, datetime.now(UTC)))
    for key, value in values.items():
        if key not in row:
            raise KeyError(f"events has no column {key}")
        row[key] = (
            orjson.dumps(value).decode() if key in _JSON_COLUMNS and not isinstance(value, str) else value
        )
    if "timestamp" in values:
        row["original_timestamp"] = row["received_at"] = values["timestamp"]
    return row


def insert_events(ch: Client, rows: list[dict[str, Any]]) -> None:
    ch.insert("events", [[row[c] for c in EVENT_COLUMNS] for row in rows], column_names=EVENT_COLUMNS)


def link(ch: Client, profile_id: str, version: int = 1, deleted: int = 0, **identifiers: str) -> None:
    """Map identifiers (user_id=…, anonymous_id=…) to a profile."""
    rows = [[kind, value, profile_id, version, deleted] for kind, value in identifiers.items()]
    columns = ["identifier_type", "identifier_value", "profile_id", "version", "deleted"]
    ch.insert("identity_map", rows, column_names=columns)


def set_traits(ch: Client, profile_id: str, version: int = 1, deleted: int = 0, **traits: Any) -> None:
    now = datetime.now(UTC)
    rows = [
        [profile_id, k, orjson.dumps(v).decode(), "src_test", now, version, deleted]
        for k, v in traits.items()
    ]
    columns = ["profile_id", "trait", "value", "source_id", "updated_at", "version", "deleted"]
    ch.insert("profile_traits", rows, column_names=columns)


def add_profile(ch: Client, profile_id: str, version: int = 1, deleted: int = 0, **computed: Any) -> None:
    row = {
        "profile_id": profile_id,
        "first_seen": EPOCH,
        "last_seen": EPOCH,
        "event_count": 0,
        "session_count": 0,
        "lifetime_revenue": 0.0,
        "version": version,
        "deleted": deleted,
    }
    row.update(computed)
    ch.insert("profiles", [list(row.values())], column_names=list(row))


def person(ch: Client, ns: str, name: str, **traits: Any) -> str:
    """A live profile `{ns}-{name}` with user_id `{ns}-u-{name}`, anonymous_id `{ns}-a-{name}`
    and the trait ns=`ns` (plus `traits`); returns the profile id."""
    profile_id = f"{ns}-{name}"
    add_profile(ch, profile_id)
    link(ch, profile_id, user_id=f"{ns}-u-{name}", anonymous_id=f"{ns}-a-{name}")
    set_traits(ch, profile_id, ns=ns, **traits)
    return profile_id


def save_audience(ch: Client, key: str, query: str, **fields: Any) -> Audience:
    """A stored audience (id `aud_{key}`) defined by the text form."""
    now = datetime.now(UTC)
    audience = Audience(id=f"aud_{key}", key=key, name=key, definition=parse(query), created_at=now, **fields)
    return store.save(ch, audience, now)
