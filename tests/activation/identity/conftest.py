"""Identity test helpers: events built with the 0001 column names, per-test unique identifiers.

Identifier values get a per-test prefix (values starting with `!` are taken literally, for blocked
and junk ids); `{p}` in a phone becomes seven per-test digits. `World.groups()` reads the live
mapping back as sets of labels with the prefix removed, for exact assertions.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

IDENTITY_TABLES = (
    "identity_links",
    "identity_link_ids",
    "identity_link_log",
    "identity_map",
    "identity_splits",
    "identity_conflicts",
    "merge_ledger",
    "identity_settings",
    "identity_records",
    "identity_proposals",
    "profile_traits",
    "profiles",
    "computed_trait_definitions",
    "profile_computed_traits",
)
BASE = datetime(2026, 1, 1, tzinfo=UTC)
_PHONES = itertools.count(1_000_000)
_ID_FIELDS = {
    "user": "user_id",
    "anon": "anonymous_id",
    "prev": "previous_id",
    "device": "device_id",
    "ad": "advertising_id",
    "group": "group_id",
}


class World:
    def __init__(self, ch: Client) -> None:
        self.ch = ch
        self.uid = secrets.token_hex(4) + "-"
        self.p = str(next(_PHONES))
        self.serial = itertools.count()

    def id(self, value: str) -> str:
        return value[1:] if value.startswith("!") else self.uid + value

    def email(self, value: str) -> str:
        if value.startswith("!"):
            return value[1:]
        stripped = value.lstrip()
        return value[: len(value) - len(stripped)] + self.uid + stripped

    def phone(self, value: str) -> str:
        return value.replace("{p}", self.p)

    def event(self, type_: str, t: float = 0, **kw: Any) -> dict[str, Any]:
        """One events row; kw: user, anon, prev, device, ad, group, traits, ctx_traits, external, event,
        properties, mid, source, is_bot, ua (context.userAgent)."""
        row: dict[str, Any] = {
            "type": type_,
            "source_id": kw.get("source", "src-test"),
            "message_id": kw.get("mid") or f"{self.uid}{next(self.serial):04d}",
            "timestamp": BASE + timedelta(seconds=t),
            "received_at": BASE + timedelta(seconds=t),
            "event": kw.get("event", ""),
            "is_bot": kw.get("is_bot", 0),
            "user_agent": kw.get("ua", ""),
        }
        for short, column in _ID_FIELDS.items():
            row[column] = self.id(kw[short]) if short in kw else ""
        context: dict[str, Any] = {}
        if "ctx_traits" in kw:
            context["traits"] = self._traits(kw["ctx_traits"])
        if "external" in kw:
            context["externalIds"] = [
                {"type": t, "id": self.id(v), "collection": "users"} for t, v in kw["external"]
            ]
        row["traits"] = orjson.dumps(self._traits(kw["traits"])).decode() if "traits" in kw else ""
        row["context"] = orjson.dumps(context).decode()
        row["properties"] = orjson.dumps(kw.get("properties", {})).decode()
        return row

    def _traits(self, traits: dict[str, Any]) -> dict[str, Any]:
        out = dict(traits)
        if isinstance(out.get("email"), str):
            out["email"] = self.email(out["email"])
        if isinstance(out.get("phone"), str):
            out["phone"] = self.phone(out["phone"])
        return out

    def insert(self, *rows: dict[str, Any]) -> None:
        columns = sorted({k for r in rows for k in r})
        self.ch.insert("events", [[r.get(c, "") for c in columns] for r in rows], column_names=columns)

    def label(self, type_: str, value: str) -> str | None:
        if value.startswith(self.uid):
            return f"{type_}:{value[len(self.uid) :]}"
        if self.p in value:
            return f"{type_}:{value.replace(self.p, '{p}')}"
        return None

    def groups(self) -> set[frozenset[str]]:
        rows = self.ch.query(
            "SELECT identifier_type, identifier_value, profile_id FROM identity_current"
        ).result_rows
        found: dict[str, set[str]] = {}
        for type_, value, profile in rows:
            label = self.label(type_, value)
            if label is not None:
                found.setdefault(profile, set()).add(label)
        return {frozenset(g) for g in found.values()}

    def profile_of(self, type_: str, value: str) -> str:
        sql = (
            "SELECT profile_id FROM identity_current WHERE identifier_type = {t:String} "
            "AND identifier_value = {v:String}"
        )
        rows = self.ch.query(sql, parameters={"t": type_, "v": value}).result_rows
        return str(rows[0][0]) if rows else ""


@pytest.fixture
def world(ch: Client) -> Iterator[World]:
    for table in IDENTITY_TABLES:
        ch.command(f"TRUNCATE TABLE IF EXISTS {table}")
    yield World(ch)
