"""Enrichment as a named list of steps, and the row each accepted event becomes.

Each step takes the event and the request facts and returns columns; a step that fails is
counted and skipped (the event is stored without its columns), never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from collector.enrich.campaign import enrich_campaign
from collector.enrich.geo import GeoLookup
from collector.enrich.ip import apply_policy
from collector.enrich.referrer import enrich_referrer
from collector.enrich.useragent import enrich_user_agent
from collector.normalize import Event
from collector.row import context_columns
from collector.sources import Source
from collector.timestamps import iso

log = logging.getLogger("magpie.enrich")
SERVER_LIBRARIES = (
    "analytics-python",
    "analytics-node",
    "analytics-ruby",
    "analytics-go",
    "analytics-java",
    "analytics-php",
    "analytics.NET",
    "RudderStack Python SDK",
    "RudderStack Node SDK",
)


_MESSAGE_TEXT = (
    ("event", "event"),
    ("name", "name"),
    ("category", "category"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
)


@dataclass(frozen=True)
class RequestFacts:
    ip: str
    user_agent: str
    source: Source


Step = Callable[[Event, RequestFacts, dict[str, Any]], dict[str, Any]]


def _user_agent_step(event: Event, facts: RequestFacts, row: dict[str, Any]) -> dict[str, Any]:
    return enrich_user_agent(row.get("user_agent") or facts.user_agent)


def _campaign_step(event: Event, facts: RequestFacts, row: dict[str, Any]) -> dict[str, Any]:
    return enrich_campaign(event.message["context"])


def _referrer_step(event: Event, facts: RequestFacts, row: dict[str, Any]) -> dict[str, Any]:
    return enrich_referrer(event.message["context"], row.get("utm_medium", ""))


def build_steps(geo: GeoLookup) -> list[tuple[str, Step]]:
    def geo_step(event: Event, facts: RequestFacts, row: dict[str, Any]) -> dict[str, Any]:
        ip = row.get("ip")
        return geo.lookup(ip) if ip and geo.enabled else {}

    return [
        ("user_agent", _user_agent_step),
        ("geo", geo_step),
        ("campaign", _campaign_step),
        ("referrer", _referrer_step),
    ]


def _client_side(context: dict[str, Any]) -> bool:
    library = context.get("library")
    name = library.get("name") if isinstance(library, dict) else None
    return context.get("channel") != "server" and name not in SERVER_LIBRARIES


def build_row(
    event: Event, facts: RequestFacts, steps: list[tuple[str, Step]], ingest_id: str, failures: list[str]
) -> dict[str, Any]:
    context = event.message["context"]
    if not context.get("ip") and _client_side(context) and facts.ip:
        context["ip"] = facts.ip
    row = _base_row(event, facts.source, ingest_id)
    row.update(context_columns(context))
    for name, step in steps:
        try:
            row.update(step(event, facts, row))
        except Exception:  # a step is an optional extra: count, log and keep the event
            log.exception("enrichment step %s failed", name)
            failures.append(name)
    seen_ip = row.get("ip", "")
    ip = apply_policy(seen_ip, facts.source.ip_policy)
    raw = event.raw
    if ip:
        row["ip"] = context["ip"] = ip
    else:
        row.pop("ip", None)
        context.pop("ip", None)
    if seen_ip and ip != seen_ip:  # the policy applies to the stored raw copy too
        raw = raw.replace(seen_ip.encode(), ip.encode())
    row["context"] = orjson.dumps(context).decode()
    row["raw"] = raw.decode("utf-8", errors="replace")
    return row


def _base_row(event: Event, source: Source, ingest_id: str) -> dict[str, Any]:
    message = event.message
    row: dict[str, Any] = {
        "source_id": source.id,
        "message_id": message["messageId"],
        "type": message["type"],
        "timestamp": iso(event.timestamp),
        "original_timestamp": iso(event.original_timestamp),
        "received_at": iso(event.received_at),
        "integrations": orjson.dumps(message["integrations"]).decode(),
        "ingest_id": ingest_id,
    }
    for column, key in _MESSAGE_TEXT:
        value = message.get(key)
        if value:
            row[column] = value
    if event.sent_at is not None:
        row["sent_at"] = iso(event.sent_at)
    if event.clamped:
        row["timestamp_clamped"] = 1
    if source.retention_days:
        row["retention_days"] = source.retention_days
    for column in ("properties", "traits"):
        value = message.get(column)
        if value is not None:
            row[column] = orjson.dumps(value).decode()
    return row
