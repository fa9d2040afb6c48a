"""The pipeline every accepted event runs through: a plain list of named steps (Plausible's shape).

A step takes the `Draft` (the normalised event, the request facts, the row's columns so far and
the raw copy) and returns it, possibly marked dropped with a reason (`draft.drop("…")`); a drop
ends the pipeline and is counted in `magpie_events_dropped_total{source,reason}`. Steps run in
the list's order. An enrichment step that raises is counted and skipped (the event is stored
without its columns); an essential step that raises (the IP policy) drops the event instead, so
a failure can never store what the policy would have removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
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
from collector.suppressions import SuppressionCache
from collector.timestamps import iso

log = logging.getLogger("magpie.enrich")
SUPPRESSED = "suppressed"
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
    """What the request says about its sender. `browser` is true for browser transports (the
    beacon and pixel endpoints, or a request with an Origin header): only then does the
    User-Agent header describe the end user rather than the HTTP client that called us."""

    ip: str
    user_agent: str
    source: Source
    browser: bool = False


@dataclass
class Draft:
    event: Event
    facts: RequestFacts
    row: dict[str, Any]
    raw: bytes
    dropped: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = self.event.message["context"]
        return context

    def drop(self, reason: str) -> Draft:
        self.dropped = reason
        return self


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Draft], Draft]
    essential: bool = False


def drop_suppressed(cache: SuppressionCache, draft: Draft) -> Draft:
    """Privacy: an event carrying any suppressed identifier is answered but never stored."""
    return draft.drop(SUPPRESSED) if cache.suppressed(draft.event.message) else draft


def require_consent(draft: Draft) -> Draft:
    """The source's `required_consent_category` must be granted in context.consent.categoryPreferences."""
    category = draft.facts.source.required_consent_category
    if not category:
        return draft
    consent = draft.context.get("consent")
    preferences = consent.get("categoryPreferences") if type(consent) is dict else None
    granted = type(preferences) is dict and preferences.get(category) is True
    return draft if granted else draft.drop("consent")


def put_client_ip(draft: Draft) -> Draft:
    """`context.ip` from the request when absent, for client-side events only (as Segment does)."""
    context = draft.context
    if not context.get("ip") and _client_side(context) and draft.facts.ip:
        context["ip"] = draft.row["ip"] = draft.facts.ip
    return draft


def put_user_agent(draft: Draft) -> Draft:
    """Browser, OS, device and the bot flag of the end user: `context.userAgent`, or the header on
    browser transports (a server SDK's own User-Agent says nothing about the user)."""
    agent = draft.row.get("user_agent") or (draft.facts.user_agent if draft.facts.browser else "")
    draft.row.update(enrich_user_agent(agent))
    return draft


def put_geo(geo: GeoLookup, draft: Draft) -> Draft:
    ip = draft.row.get("ip")
    if ip and geo.enabled:
        draft.row.update(geo.lookup(ip))
    return draft


def put_campaign(draft: Draft) -> Draft:
    draft.row.update(enrich_campaign(draft.context))
    return draft


def put_referrer(draft: Draft) -> Draft:
    draft.row.update(enrich_referrer(draft.context, draft.row.get("utm_medium", "")))
    return draft


def apply_ip_policy(draft: Draft) -> Draft:
    """The source's IP policy on the column, the stored context and the raw copy. The raw copy is
    rebuilt from the parsed item, and only when the item's own `context.ip` changes."""
    seen = draft.row.get("ip", "")
    ip = apply_policy(seen, draft.facts.source.ip_policy)
    if ip:
        draft.row["ip"] = draft.context["ip"] = ip
    else:
        draft.row.pop("ip", None)
        draft.context.pop("ip", None)
    own = draft.event.item.get("context")
    if type(own) is dict and "ip" in own and own["ip"] != ip:
        context = {k: v for k, v in own.items() if k != "ip"}
        if ip:
            context["ip"] = ip
        draft.raw = orjson.dumps({**draft.event.item, "context": context})
    return draft


def build_steps(geo: GeoLookup, suppressions: SuppressionCache | None = None) -> list[Step]:
    """STEPS: the pipeline, in order. The privacy steps come first (a drop costs no enrichment) and
    are essential: if one fails, the event is dropped rather than stored."""
    cache = suppressions if suppressions is not None else SuppressionCache(b"")
    return [
        Step("suppression", partial(drop_suppressed, cache), essential=True),
        Step("consent", require_consent, essential=True),
        Step("client_ip", put_client_ip),
        Step("user_agent", put_user_agent),
        Step("geo", partial(put_geo, geo)),
        Step("campaign", put_campaign),
        Step("referrer", put_referrer),
        Step("ip_policy", apply_ip_policy, essential=True),
    ]


def _client_side(context: dict[str, Any]) -> bool:
    library = context.get("library")
    name = library.get("name") if isinstance(library, dict) else None
    return context.get("channel") != "server" and name not in SERVER_LIBRARIES


def build_row(event: Event, facts: RequestFacts, steps: list[Step], ingest_id: str) -> Draft:
    """Run `steps` over the event's draft; unless dropped, `draft.row` is then the finished row."""
    row = _base_row(event, facts.source, ingest_id)
    row.update(context_columns(event.message["context"]))
    draft = Draft(event, facts, row, event.raw)
    for step in steps:
        try:
            draft = step.run(draft)
        except Exception:  # a step is an optional extra unless essential: count, log, carry on
            log.exception("pipeline step %s failed", step.name)
            draft.failures.append(step.name)
            if step.essential:
                draft.drop(f"{step.name}_failed")
        if draft.dropped:
            return draft
    draft.row["context"] = orjson.dumps(draft.context).decode()
    draft.row["raw"] = draft.raw.decode("utf-8", errors="replace")
    return draft


def _base_row(event: Event, source: Source, ingest_id: str) -> dict[str, Any]:
    message, timing = event.message, event.timing
    row: dict[str, Any] = {
        "source_id": source.id,
        "message_id": message["messageId"],
        "type": message["type"],
        "timestamp": iso(timing.timestamp),
        "original_timestamp": iso(timing.original),
        "received_at": iso(event.received_at),
        "integrations": orjson.dumps(message["integrations"]).decode(),
        "ingest_id": ingest_id,
    }
    for column, key in _MESSAGE_TEXT:
        value = message.get(key)
        if value:
            row[column] = value
    if timing.sent_at is not None:
        row["sent_at"] = iso(timing.sent_at)
    if timing.clamped:
        row["timestamp_clamped"] = 1
    if source.retention_days:
        row["retention_days"] = source.retention_days
    for column in ("properties", "traits"):
        value = message.get(column)
        if value is not None:
            row[column] = orjson.dumps(value).decode()
    return row
