"""TikTok Custom Audiences: `segment/mapping` add (entered) and delete (exited) of hashed users."""

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
from activation.destinations.http import JSON_HEADERS, as_dict, as_list, call, json_bytes
from activation.destinations.tiktok_payload import (
    ADVERTISING_SCHEMAS,
    MAX_USERS_PER_REQUEST,
    classify,
    mapping_bodies,
    member_rows,
)
from activation.net import HttpClient, HttpResponse


@dataclass(frozen=True)
class TikTokConfig:
    advertiser_id: str
    audience_id: str
    base_url: str
    api_version: str
    advertising_id_schema: str

    def url(self, path: str) -> str:
        return f"{self.base_url}/open_api/{self.api_version}{path}"


def read_config(config: Config) -> tuple[TikTokConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = TikTokConfig(
        advertiser_id=r.text("advertiser_id", pattern=r"\d+"),
        audience_id=r.text("audience_id", pattern=r"\d+"),
        base_url=r.url("base_url", default="https://business-api.tiktok.com"),
        api_version=r.text("api_version", default="v1.3", pattern=r"v\d+\.\d+"),
        # Magpie's advertising_id does not say whether it is an IDFA or a GAID: the config does.
        advertising_id_schema=r.text(
            "advertising_id_schema", default="IDFA_SHA256", choices=ADVERTISING_SCHEMAS
        ),
    )
    return parsed, r.errors


def load_config(config: Config) -> TikTokConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_headers(credentials: Credentials) -> dict[str, str]:
    return {**JSON_HEADERS, "access-token": credentials.require("access_token")}


class TikTokDestination:
    type = "tiktok"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].base_url]

    def batch_limit(self, config: Config) -> int:
        return MAX_USERS_PER_REQUEST

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        removed = await self._apply(session, cfg, credentials, "delete", batch.exited)
        added = await self._apply(session, cfg, credentials, "add", batch.entered)
        return SendResult(
            added=added.added, removed=removed.added, failures=removed.failures + added.failures
        )

    async def _apply(
        self,
        session: HttpClient,
        cfg: TikTokConfig,
        credentials: Credentials,
        action: str,
        members: Sequence[Member],
    ) -> SendResult:
        rows, failures = [], []
        for member in members:
            found = member_rows(member, cfg.advertising_id_schema)
            if not found:
                failures.append(RecordFailure(member.profile_id, "no_matchable_identifiers", permanent=True))
            rows.extend(found)
        for body in mapping_bodies(rows, cfg.advertiser_id, cfg.audience_id, action):
            await _request(session, "POST", cfg.url("/segment/mapping/"), credentials, body=body)
        return SendResult(added=len(members) - len(failures), failures=tuple(failures))

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        params = {"advertiser_id": cfg.advertiser_id, "custom_audience_ids": f'["{cfg.audience_id}"]'}
        url = cfg.url("/dmp/custom_audience/get/")
        response = await _request(session, "GET", url, credentials, params=params)
        found = as_list(as_dict(as_dict(response.json()).get("data")).get("list"))
        ids = {str(as_dict(as_dict(item).get("audience_details")).get("audience_id")) for item in found}
        if cfg.audience_id not in ids:
            raise PermanentError(
                f"tiktok: audience {cfg.audience_id} not found for advertiser {cfg.advertiser_id}"
            )


async def _request(
    session: HttpClient,
    method: str,
    url: str,
    credentials: Credentials,
    *,
    body: dict[str, object] | None = None,
    params: dict[str, str] | None = None,
) -> HttpResponse:
    payload = json_bytes(body) if body is not None else None
    response = await call(
        session, method, url, headers=auth_headers(credentials), params=params, body=payload
    )
    error = classify(response, records=body is not None)
    if error is not None:
        raise error
    return response
