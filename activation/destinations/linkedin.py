"""LinkedIn Matched Audiences: BATCH_CREATE of ADD/REMOVE elements on a DMP segment's users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    Config,
    Credentials,
    Member,
    PermanentError,
    RecordFailure,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import JSON_HEADERS, as_dict, call, json_bytes
from activation.destinations.linkedin_payload import (
    EMAIL_ID_TYPES,
    MAX_ELEMENTS,
    PROTOCOL_VERSION,
    classify_error,
    element,
    element_failures,
)
from activation.destinations.oauth import refresh_access_token
from activation.net import HttpClient, HttpResponse


@dataclass(frozen=True)
class LinkedInConfig:
    segment_id: str
    base_url: str
    token_url: str
    api_version: str
    email_hashing: str
    send_google_aid: bool


def read_config(config: Config) -> tuple[LinkedInConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = LinkedInConfig(
        segment_id=r.text("segment_id", pattern=r"\d+"),
        base_url=r.url("base_url", default="https://api.linkedin.com"),
        token_url=r.url("token_url", default="https://www.linkedin.com/oauth/v2/accessToken"),
        api_version=r.text("api_version", default="202604", pattern=r"20\d{4}"),
        email_hashing=r.text("email_hashing", default="SHA256", choices=tuple(EMAIL_ID_TYPES)),
        # Magpie's advertising_id may be an IDFA, which LinkedIn does not take: off unless asked for.
        send_google_aid=r.flag("send_google_aid", default=False),
    )
    return parsed, r.errors


def load_config(config: Config) -> LinkedInConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def headers(credentials: Credentials, cfg: LinkedInConfig) -> dict[str, str]:
    return {
        **JSON_HEADERS,
        "authorization": f"Bearer {credentials.require('access_token')}",
        "linkedin-version": cfg.api_version,
        "x-restli-protocol-version": PROTOCOL_VERSION,
    }


class LinkedInDestination:
    type = "linkedin"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.base_url, cfg.token_url]

    def batch_limit(self, config: Config) -> int:
        return MAX_ELEMENTS

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        removed = await self._apply(session, cfg, credentials, "REMOVE", batch.exited)
        added = await self._apply(session, cfg, credentials, "ADD", batch.entered)
        return SendResult(
            added=added.added, removed=removed.added, failures=removed.failures + added.failures
        )

    async def _apply(
        self,
        session: HttpClient,
        cfg: LinkedInConfig,
        credentials: Credentials,
        action: str,
        members: Sequence[Member],
    ) -> SendResult:
        elements, failures = [], []
        for member in members:
            built = element(member, action, hashing=cfg.email_hashing, send_google_aid=cfg.send_google_aid)
            if built is None:
                failures.append(RecordFailure(member.profile_id, "no_matchable_identifiers", permanent=True))
            else:
                elements.append(built)
        url = f"{cfg.base_url}/rest/dmpSegments/{cfg.segment_id}/users"
        for start in range(0, len(elements), MAX_ELEMENTS):
            chunk = elements[start : start + MAX_ELEMENTS]
            body = json_bytes({"elements": [e.body for e in chunk]})
            batch_headers = {**headers(credentials, cfg), "x-restli-method": "BATCH_CREATE"}
            response = _checked(await call(session, "POST", url, headers=batch_headers, body=body), True)
            failures.extend(element_failures(response.json(), chunk))
        return SendResult(added=len(members) - len(failures), failures=tuple(failures))

    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        return await refresh_access_token(session, load_config(config).token_url, credentials, "linkedin")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        url = f"{cfg.base_url}/rest/dmpSegments/{cfg.segment_id}"
        response = _checked(await call(session, "GET", url, headers=headers(credentials, cfg)), False)
        kind = as_dict(response.json()).get("type")
        if kind != "USER":
            raise PermanentError(f"linkedin: DMP segment {cfg.segment_id} is {kind}, not a USER segment")


def _checked(response: HttpResponse, records: bool) -> HttpResponse:
    if response.status >= 300:
        raise classify_error(response, records=records)
    return response
