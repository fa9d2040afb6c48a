"""Amplitude HTTP V2: `POST {base}/2/httpapi` with `{"api_key", "events", "options"}` (key in the body).

Rules (reference/event-destinations.md §3): fewer than 2,000 events (default `batch_size` 1,000) and
under 1 MB per request; each event needs `event_type` and a `user_id` or `device_id` of at least
`min_id_length` chars (default 5, sent as `options.min_id_length`) — an event with neither is refused
here. `insert_id` = messageId: Amplitude ignores a repeated insert_id for the same device within 7 days,
so a retry is not a duplicate. track/page/screen → event_type (page/screen as "Viewed {name} Page");
identify → `$identify` with `user_properties.$set` = traits; group and alias are skipped.
Responses: 200 ok; 400 naming event indexes (`events_with_invalid_fields`, `events_with_missing_fields`,
`silenced_events`) ingests NOTHING: those events are refused, the rest re-sent; 400 `Invalid API key`
is permanent; other 400s and 413 refuse the request (bisected); 429 and 5xx retryable (no Retry-After
is documented; one is honoured if sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from activation.destinations.base import Config, Credentials, PermanentError, RejectedError
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.events.base import (
    EventOutcome,
    OutboundEvent,
    RecordsRefused,
    event_name,
    leading,
    scalar_properties,
)
from activation.destinations.events.mixpanel import epoch_ms
from activation.destinations.http import JSON_HEADERS, as_dict, as_list, call, raise_for_generic
from activation.net import HttpClient, HttpResponse

BASE_URL = "https://api2.amplitude.com"
MAX_EVENTS, MAX_BYTES = 1999, 1_000_000
INDEX_MAPS = ("events_with_invalid_fields", "events_with_missing_fields")


def amplitude_event(e: OutboundEvent, min_id: int) -> dict[str, Any] | str:
    """The platform event, or why it cannot be sent."""
    event = e.event
    kind = event.get("type")
    if kind not in ("track", "page", "screen", "identify"):
        return f"amplitude takes events and identifies, not {kind}"
    out: dict[str, Any] = {"time": epoch_ms(event.get("timestamp")), "insert_id": e.message_id}
    for field, source in (("user_id", "userId"), ("device_id", "anonymousId")):
        value = str(event.get(source) or "")
        if len(value) >= min_id:
            out[field] = value
    if "user_id" not in out and "device_id" not in out:
        return f"needs a userId or anonymousId of at least {min_id} characters"
    if kind == "identify":
        out.update(event_type="$identify", user_properties={"$set": scalar_properties(event)})
    else:
        out.update(event_type=event_name(event), event_properties=scalar_properties(event))
    return out


def read_config(config: Config) -> tuple[dict[str, Any], dict[str, str]]:
    r = ConfigReader(config)
    parsed = {
        "base_url": r.url("base_url", default=BASE_URL),
        "batch_size": r.integer("batch_size", default=1000, low=1, high=MAX_EVENTS),
        "min_id_length": r.integer("min_id_length", default=5, low=1, high=5),
    }
    return parsed, r.errors


def refused_indexes(body: dict[str, Any]) -> set[int]:
    found: set[int] = set()
    for name in INDEX_MAPS:
        for indexes in as_dict(body.get(name)).values():
            found.update(i for i in as_list(indexes) if isinstance(i, int))
    found.update(i for i in as_list(body.get("silenced_events")) if isinstance(i, int))
    return found


def check_response(response: HttpResponse, sent: list[int]) -> None:
    if response.status != 400:
        raise_for_generic(response, "amplitude")
        return
    body = as_dict(orjson.loads(response.body)) if response.body.startswith(b"{") else {}
    error = str(body.get("error", ""))[:200]
    if "api key" in error.lower():
        raise PermanentError(f"amplitude: {error}")
    bad = sorted(i for i in refused_indexes(body) if 0 <= i < len(sent))
    if not bad:
        raise RejectedError(f"amplitude: HTTP 400 {error}")
    raise RecordsRefused(f"amplitude: {error}", tuple((sent[i], f"amplitude refused: {error}") for i in bad))


class AmplitudeEvents:
    type = "amplitude"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_key") else {"api_key": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0]["base_url"]]

    def take(self, events: Sequence[OutboundEvent], config: Config) -> int:
        cfg = read_config(config)[0]
        return leading(events, cfg["batch_size"], MAX_BYTES - 200, lambda e: len(orjson.dumps(e.event)) + 1)

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
        sent: list[int] = []
        payload: list[dict[str, Any]] = []
        skipped: list[tuple[int, str]] = []
        refused: list[tuple[int, str]] = []
        for index, e in enumerate(events):
            built = amplitude_event(e, cfg["min_id_length"])
            if isinstance(built, str):
                (skipped if "takes" in built else refused).append((index, built))
            else:
                sent.append(index)
                payload.append(built)
        if payload:
            body = {
                "api_key": credentials.require("api_key"),
                "events": payload,
                "options": {"min_id_length": cfg["min_id_length"]},
            }
            url = cfg["base_url"] + "/2/httpapi"
            response = await call(session, "POST", url, headers=JSON_HEADERS, body=orjson.dumps(body))
            check_response(response, sent)
        return EventOutcome(tuple(refused), tuple(skipped))
