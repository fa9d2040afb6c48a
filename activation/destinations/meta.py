"""Meta Custom Audiences: POST (add) and DELETE (remove) hashed rows on /{audience_id}/users."""

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
from activation.destinations.meta_payload import appsecret_proof, build_payloads, classify_error, member_rows
from activation.net import HttpClient


@dataclass(frozen=True)
class MetaConfig:
    audience_id: str
    base_url: str
    api_version: str
    send_extern_id: bool

    @property
    def users_url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.audience_id}/users"


def read_config(config: Config) -> tuple[MetaConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = MetaConfig(
        audience_id=r.text("audience_id", pattern=r"\d+"),
        base_url=r.url("base_url", default="https://graph.facebook.com"),
        api_version=r.text("api_version", default="v25.0", pattern=r"v\d+\.\d+"),
        send_extern_id=r.flag("send_extern_id", default=False),
    )
    return parsed, r.errors


def load_config(config: Config) -> MetaConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_params(credentials: Credentials) -> dict[str, str]:
    token = credentials.require("access_token")
    params = {"access_token": token}
    app_secret = credentials.get("app_secret")
    if app_secret:
        params["appsecret_proof"] = appsecret_proof(app_secret, token)
    return params


class MetaDestination:
    type = "meta"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].base_url]

    def batch_limit(self, config: Config) -> int:
        return 10_000

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        removed = await self._apply(session, cfg, credentials, "DELETE", batch.exited)
        added = await self._apply(session, cfg, credentials, "POST", batch.entered)
        return SendResult(
            added=added.added,
            removed=removed.added,
            failures=removed.failures + added.failures,
            unattributed_invalid=removed.unattributed_invalid + added.unattributed_invalid,
        )

    async def _apply(
        self,
        session: HttpClient,
        cfg: MetaConfig,
        credentials: Credentials,
        method: str,
        members: Sequence[Member],
    ) -> SendResult:
        rows = []
        failures = []
        for member in members:
            member_rows_ = member_rows(member, extern_id=cfg.send_extern_id)
            if not member_rows_:
                failures.append(RecordFailure(member.profile_id, "no_matchable_identifiers", permanent=True))
            rows.extend(member_rows_)
        invalid = 0
        for payload in build_payloads(rows):
            body = json_bytes({"payload": payload, **auth_params(credentials)})
            response = await call(session, method, cfg.users_url, headers=JSON_HEADERS, body=body)
            if response.status >= 300:
                raise classify_error(response)
            count = as_dict(response.json()).get("num_invalid_entries", 0)
            invalid += count if isinstance(count, int) else 0
        return SendResult(
            added=len(members) - len(failures), failures=tuple(failures), unattributed_invalid=invalid
        )

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        url = f"{cfg.base_url}/{cfg.api_version}/{cfg.audience_id}"
        auth = auth_params(credentials)
        headers = {**JSON_HEADERS, "authorization": f"Bearer {auth.pop('access_token')}"}
        params = {"fields": "id,name,operation_status", **auth}
        response = await call(session, "GET", url, headers=headers, params=params)
        if response.status >= 300:
            raise classify_error(response)
        if str(as_dict(response.json()).get("id")) != cfg.audience_id:
            raise PermanentError(f"meta: audience {cfg.audience_id} not readable")
