"""Signed webhook: POST `{"audience", "entered", "exited"}` JSON with Standard Webhooks headers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    JSONValue,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import CONTENT_REJECTED, call, excerpt, json_bytes, parse_retry_after
from activation.destinations.signing import InvalidSecret, decode_secret, signature_headers
from activation.net import HttpClient, HttpResponse

MAX_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    batch_size: int


def read_config(config: Config) -> tuple[WebhookConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = WebhookConfig(
        url=r.url("url"), batch_size=r.integer("batch_size", default=500, low=1, high=MAX_BATCH_SIZE)
    )
    return parsed, r.errors


def load_config(config: Config) -> WebhookConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def member_json(member: Member) -> dict[str, JSONValue]:
    identifiers: dict[str, JSONValue] = {k: list(v) for k, v in member.identifiers.items() if v}
    return {"profile_id": member.profile_id, "identifiers": identifiers, "traits": dict(member.traits)}


def build_body(audience: str, entered: Sequence[Member], exited: Sequence[Member]) -> bytes:
    """The exact bytes that are signed and sent."""
    payload = {
        "audience": audience,
        "entered": [member_json(m) for m in entered],
        "exited": [member_json(m) for m in exited],
    }
    return json_bytes(payload)


def message_id(batch_id: str, part: int, body: bytes) -> str:
    """Stable across retries (the receiver's idempotency key): from batch_id, else from the body."""
    basis = f"{batch_id}:{part}" if batch_id else hashlib.sha256(body).hexdigest()
    return "msg_" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def split(batch: SyncBatch, size: int) -> Iterator[tuple[list[Member], list[Member]]]:
    """Parts of at most `size` members in total, exits first (the same order as other destinations)."""
    tagged = [(m, False) for m in batch.exited] + [(m, True) for m in batch.entered]
    for start in range(0, len(tagged), size):
        part = tagged[start : start + size]
        yield [m for m, entered in part if entered], [m for m, entered in part if not entered]


def check_response(response: HttpResponse) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if status in (408, 425, 429) or status >= 500:
        raise RetryableError(f"webhook HTTP {status}", parse_retry_after(response.headers.get("retry-after")))
    if status in CONTENT_REJECTED:
        raise RejectedError(f"webhook HTTP {status}: {excerpt(response.body.decode('utf-8', 'replace'))}")
    raise PermanentError(f"webhook HTTP {status}")


class WebhookDestination:
    type = "webhook"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        try:
            decode_secret(credentials.get("secret", ""))
        except InvalidSecret as exc:
            return {"secret": str(exc)}
        return {}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].url]

    def batch_limit(self, config: Config) -> int:
        return read_config(config)[0].batch_size

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        key = _key(credentials)
        for part, (entered, exited) in enumerate(split(batch, cfg.batch_size)):
            body = build_body(batch.audience_key, entered, exited)
            await _post(session, cfg.url, key, message_id(batch.batch_id, part, body), body)
        return SendResult(added=len(batch.entered), removed=len(batch.exited))

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """A signed deletion notice; the receiver erases the person (same id on every retry)."""
        body = deletion_body(identifiers)
        await _post(session, load_config(config).url, _key(credentials), message_id("", 0, body), body)
        return Erasure("notified", "webhook deletion notice delivered")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        body = build_body("magpie.test", [], [])
        await _post(
            session, cfg.url, _key(credentials), message_id("", 0, body + str(time.time()).encode()), body
        )


def deletion_body(identifiers: Mapping[str, Sequence[str]]) -> bytes:
    """The signed privacy notice: `{"type": "deletion", "identifiers": {type: [values]}}`."""
    kept = {k: sorted(set(v)) for k, v in sorted(identifiers.items()) if v}
    return json_bytes({"type": "deletion", "identifiers": kept})


async def _post(session: HttpClient, url: str, key: bytes, msg_id: str, body: bytes) -> None:
    headers = {"content-type": "application/json", **signature_headers(key, msg_id, int(time.time()), body)}
    check_response(await call(session, "POST", url, headers=headers, body=body))


def _key(credentials: Credentials) -> bytes:
    try:
        return decode_secret(credentials.require("secret"))
    except InvalidSecret as exc:
        raise PermanentError(str(exc)) from None
