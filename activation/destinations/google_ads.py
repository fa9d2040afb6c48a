"""Google Ads Customer Match via OfflineUserDataJobService: create job → addOperations → run.

Removals and additions go in separate jobs (one job per kind per send). Retries are safe: adding a
member twice is a no-op; an interrupted job that never ran is simply abandoned by Google.
"""

from __future__ import annotations

import re
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
from activation.destinations.google_ads_payload import (
    Operation,
    add_operations_body,
    build_operations,
    chunk_operations,
    classify_error,
    create_job_body,
    partial_failures,
)
from activation.destinations.http import JSON_HEADERS, as_dict, call, json_bytes
from activation.destinations.oauth import refresh_access_token
from activation.net import HttpClient, HttpResponse

UPLOAD_KEY_TYPES = ("CONTACT_INFO", "CRM_ID", "MOBILE_ADVERTISING_ID")
CONSENT_VALUES = ("GRANTED", "DENIED", "UNSPECIFIED")


@dataclass(frozen=True)
class GoogleAdsConfig:
    customer_id: str
    user_list_id: str
    login_customer_id: str | None
    base_url: str
    api_version: str
    token_url: str
    upload_key_type: str
    gmail_normalization: bool
    ad_user_data: str
    ad_personalization: str
    identifiers_per_request: int

    @property
    def user_list(self) -> str:
        return f"customers/{self.customer_id}/userLists/{self.user_list_id}"


def read_config(config: Config) -> tuple[GoogleAdsConfig, dict[str, str]]:
    r = ConfigReader(config)
    login = config.get("login_customer_id")
    parsed = GoogleAdsConfig(
        customer_id=r.text("customer_id", pattern=r"\d{3}-?\d{3}-?\d{4}").replace("-", ""),
        user_list_id=r.text("user_list_id", pattern=r"\d+"),
        login_customer_id=str(login).replace("-", "") if login else None,
        base_url=r.url("base_url", default="https://googleads.googleapis.com"),
        api_version=r.text("api_version", default="v23", pattern=r"v\d+"),
        token_url=r.url("token_url", default="https://oauth2.googleapis.com/token"),
        upload_key_type=r.text("upload_key_type", default="CONTACT_INFO", choices=UPLOAD_KEY_TYPES),
        gmail_normalization=r.flag("gmail_normalization", default=True),
        ad_user_data=r.text("ad_user_data_consent", default="GRANTED", choices=CONSENT_VALUES),
        ad_personalization=r.text("ad_personalization_consent", default="GRANTED", choices=CONSENT_VALUES),
        identifiers_per_request=r.integer("identifiers_per_request", default=10_000, low=1, high=100_000),
    )
    if parsed.login_customer_id is not None and not re.fullmatch(r"\d{10}", parsed.login_customer_id):
        r.errors["login_customer_id"] = "must be a 10-digit customer id"
    return parsed, r.errors


def load_config(config: Config) -> GoogleAdsConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_headers(credentials: Credentials, cfg: GoogleAdsConfig) -> dict[str, str]:
    headers = {
        **JSON_HEADERS,
        "authorization": f"Bearer {credentials.require('access_token')}",
        "developer-token": credentials.require("developer_token"),
    }
    if cfg.login_customer_id:
        headers["login-customer-id"] = cfg.login_customer_id
    return headers


class GoogleAdsDestination:
    type = "google_ads"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {k: "is required" for k in ("developer_token", "access_token") if not credentials.get(k)}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.base_url, cfg.token_url]

    def batch_limit(self, config: Config) -> int:
        return 10_000

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        headers = auth_headers(credentials, cfg)
        removed = await self._sync_kind(session, cfg, headers, batch.exited, "remove")
        added = await self._sync_kind(session, cfg, headers, batch.entered, "create")
        return SendResult(
            added=added.added, removed=removed.added, failures=removed.failures + added.failures
        )

    async def _sync_kind(
        self,
        session: HttpClient,
        cfg: GoogleAdsConfig,
        headers: dict[str, str],
        members: Sequence[Member],
        kind: str,
    ) -> SendResult:
        operations, unmatchable = build_operations(
            members, kind, cfg.upload_key_type, gmail_rule=cfg.gmail_normalization
        )
        failures = [RecordFailure(pid, "no_matchable_identifiers", permanent=True) for pid in unmatchable]
        if operations:
            job = await self._create_job(session, cfg, headers)
            for chunk in chunk_operations(operations, cfg.identifiers_per_request):
                failures.extend(await self._add_operations(session, cfg, headers, job, chunk))
            await self._post(session, cfg, headers, f"{job}:run", {})
        failed = {f.profile_id for f in failures}
        ok = {m.profile_id for m in members} - failed
        return SendResult(added=len(ok), failures=tuple(_unique(failures)))

    async def _create_job(self, session: HttpClient, cfg: GoogleAdsConfig, headers: dict[str, str]) -> str:
        body = create_job_body(cfg.user_list, cfg.ad_user_data, cfg.ad_personalization)
        response = await self._post(
            session, cfg, headers, f"customers/{cfg.customer_id}/offlineUserDataJobs:create", body
        )
        name = as_dict(response.json()).get("resourceName")
        pattern = rf"customers/{cfg.customer_id}/offlineUserDataJobs/\d+"
        if not isinstance(name, str) or not re.fullmatch(pattern, name):
            raise PermanentError("google_ads: create job returned no valid resourceName")
        return name

    async def _add_operations(
        self,
        session: HttpClient,
        cfg: GoogleAdsConfig,
        headers: dict[str, str],
        job: str,
        ops: list[Operation],
    ) -> list[RecordFailure]:
        response = await self._post(session, cfg, headers, f"{job}:addOperations", add_operations_body(ops))
        failures = []
        for err in partial_failures(response.json()):
            if err.operation_index is not None and 0 <= err.operation_index < len(ops):
                reason = f"{err.kind}.{err.code}: {err.message}"
                failures.append(RecordFailure(ops[err.operation_index].profile_id, reason, not err.retryable))
        return failures

    async def _post(
        self, session: HttpClient, cfg: GoogleAdsConfig, headers: dict[str, str], path: str, body: object
    ) -> HttpResponse:
        url = f"{cfg.base_url}/{cfg.api_version}/{path}"
        response = await call(session, "POST", url, headers=headers, body=json_bytes(body))
        if response.status >= 300:
            raise classify_error(response)
        return response

    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        cfg = load_config(config)
        return await refresh_access_token(session, cfg.token_url, credentials, "google_ads")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        query = f"SELECT user_list.id, user_list.name FROM user_list WHERE user_list.id = {cfg.user_list_id}"
        path = f"customers/{cfg.customer_id}/googleAds:search"
        response = await self._post(session, cfg, auth_headers(credentials, cfg), path, {"query": query})
        if not as_dict(response.json()).get("results"):
            raise PermanentError(f"google_ads: user list {cfg.user_list_id} not found")


def _unique(failures: list[RecordFailure]) -> list[RecordFailure]:
    first: dict[str, RecordFailure] = {}
    for failure in failures:
        first.setdefault(failure.profile_id, failure)
    return list(first.values())
