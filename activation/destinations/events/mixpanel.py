"""Mixpanel import API: `POST {base}/import?strict=1&project_id=…`, a JSON array of events.

Auth: Basic `service_account_user:service_account_secret` (with `project_id`), or Basic
`project_token:` (reference/event-destinations.md §2). At most 2,000 events per request and
`max_request_bytes` (default 2 MB — the older, stricter limit; current docs say 10 MB).
Each event: `event` (track name, or "Viewed {name} Page"/"Page Viewed" for page and screen),
`properties.time` (ms), `distinct_id` (userId, else anonymousId), `$device_id`/`$user_id`, and
`$insert_id` — the messageId when it is ≤ 36 chars of `[A-Za-z0-9-]`, else 32 hex chars of its
SHA-256 — so a retry is deduplicated by Mixpanel (same event, time, distinct_id, $insert_id).
identify, group and alias are skipped (profiles are Mixpanel's Engage API, not /import).
Responses: 200 ok; 400 with `failed_records` is a PARTIAL success (the rest were imported): the
failed indexes are refused for good; 400 without them and 413 refuse the request (the engine bisects);
401/403 permanent; 429 and 5xx retryable (Mixpanel documents no Retry-After; honoured if sent).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from activation.destinations.base import Config, Credentials, PermanentError, RejectedError
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.events.base import (
    EventOutcome,
    OutboundEvent,
    event_name,
    leading,
    scalar_properties,
)
from activation.destinations.http import JSON_HEADERS, as_dict, as_list, call, raise_for_generic
from activation.net import HttpClient, HttpResponse

BASE_URL = "https://api.mixpanel.com"
MAX_EVENTS, DEFAULT_BYTES, MAX_BYTES = 2000, 2 * 1024 * 1024, 10 * 1024 * 1024
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


def insert_id(message_id: str) -> str:
    if _INSERT_ID.fullmatch(message_id):
        return message_id
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


def epoch_ms(text: object) -> int:
    try:
        return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


def mixpanel_event(e: OutboundEvent) -> dict[str, Any] | None:
    event = e.event
    if event.get("type") not in ("track", "page", "screen"):
        return None
    user, anonymous = event.get("userId"), event.get("anonymousId")
    props: dict[str, Any] = {**scalar_properties(event), "time": epoch_ms(event.get("timestamp"))}
    props["distinct_id"] = str(user or anonymous or "")
    props["$insert_id"] = insert_id(e.message_id)
    if anonymous:
        props["$device_id"] = str(anonymous)
    if user:
        props["$user_id"] = str(user)
    ip = as_dict(event.get("context")).get("ip")
    if isinstance(ip, str) and ip:
        props["ip"] = ip
    return {"event": event_name(event), "properties": props}


def read_config(config: Config) -> tuple[dict[str, Any], dict[str, str]]:
    r = ConfigReader(config)
    parsed = {
        "base_url": r.url("base_url", default=BASE_URL),
        "project_id": str(config.get("project_id", "")),
        "max_request_bytes": r.integer("max_request_bytes", default=DEFAULT_BYTES, low=1024, high=MAX_BYTES),
    }
    if "project_id" in config:
        r.text("project_id", pattern=r"[0-9]{1,20}")
    return parsed, r.errors


def authorization(credentials: Credentials, project_id: str) -> str:
    user, secret = credentials.get("service_account_user"), credentials.get("service_account_secret")
    if user and secret:
        if not project_id:
            raise PermanentError("a service account needs config.project_id")
        pair = f"{user}:{secret}"
    else:
        pair = credentials.require("project_token") + ":"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def read_response(response: HttpResponse, sent: list[int]) -> tuple[tuple[int, str], ...]:
    """Refused indexes (into the events given) from a strict-mode 400 partial success."""
    if response.status != 400:
        raise_for_generic(response, "mixpanel")
        return ()
    body = as_dict(orjson.loads(response.body or b"{}")) if response.body.startswith(b"{") else {}
    failed = as_list(body.get("failed_records"))
    if not failed:
        raise RejectedError(f"mixpanel: HTTP 400 {str(body.get('error', ''))[:200]}")
    out = []
    for record in failed:
        item = as_dict(record)
        index = item.get("index")
        if isinstance(index, int) and 0 <= index < len(sent):
            reason = f"mixpanel refused {item.get('field', '')}: {str(item.get('message', ''))[:200]}"
            out.append((sent[index], reason))
    return tuple(out)


class MixpanelEvents:
    type = "mixpanel"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        pair = credentials.get("service_account_user") and credentials.get("service_account_secret")
        if pair or credentials.get("project_token"):
            return {}
        return {"project_token": "is required (or service_account_user and service_account_secret)"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0]["base_url"]]

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        limit = read_config(config)[0]["max_request_bytes"] - 2
        return leading(events, MAX_EVENTS, limit, lambda e: len(orjson.dumps(mixpanel_event(e))) + 1)

    async def send_events(
        self,
        session: HttpClient,
        events: Sequence[OutboundEvent],
        credentials: Credentials,
        config: Config,
        key: str,
    ) -> EventOutcome:
        cfg, errors = read_config(config)
        require_valid(errors)
        sent, payload, skipped = [], [], []
        for index, e in enumerate(events):
            built = mixpanel_event(e)
            if built is None:
                skipped.append((index, f"mixpanel /import takes events only, not {e.event.get('type')}"))
            else:
                sent.append(index)
                payload.append(built)
        if not payload:
            return EventOutcome(skipped=tuple(skipped))
        params = {"strict": "1", **({"project_id": cfg["project_id"]} if cfg["project_id"] else {})}
        headers = {**JSON_HEADERS, "authorization": authorization(credentials, cfg["project_id"])}
        url = cfg["base_url"] + "/import"
        response = await call(
            session, "POST", url, headers=headers, params=params, body=orjson.dumps(payload)
        )
        return EventOutcome(read_response(response, sent), tuple(skipped))
