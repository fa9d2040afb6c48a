"""Customer.io: identify entered people (v2 batch), then add them to / remove exited ones from a manual
segment (Track API v1, 1000 ids per call)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    PermanentError,
    RecordFailure,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.customerio_payload import (
    ID_TYPES,
    MAX_SEGMENT_IDS,
    REGIONS,
    Keyed,
    batch_chunks,
    batch_errors,
    classify_error,
    erase_targets,
    identify_entry,
    keyed_members,
)
from activation.destinations.http import JSON_HEADERS, as_dict, call, json_bytes
from activation.net import HttpClient, HttpResponse


@dataclass(frozen=True)
class CustomerIoConfig:
    segment_id: str
    region: str
    base_url: str
    id_type: str
    identify: bool


def read_config(config: Config) -> tuple[CustomerIoConfig, dict[str, str]]:
    r = ConfigReader(config)
    region = r.text("region", default="us", choices=tuple(REGIONS))
    parsed = CustomerIoConfig(
        segment_id=r.text("segment_id", pattern=r"\d+"),
        region=region,
        base_url=r.url("base_url", default=REGIONS.get(region, REGIONS["us"])),
        id_type=r.text("id_type", default="id", choices=ID_TYPES),
        identify=r.flag("identify", default=True),
    )
    return parsed, r.errors


def load_config(config: Config) -> CustomerIoConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_headers(credentials: Credentials) -> dict[str, str]:
    pair = f"{credentials.require('site_id')}:{credentials.require('api_key')}"
    return {**JSON_HEADERS, "authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class CustomerIoDestination:
    type = "customerio"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {k: "is required" for k in ("site_id", "api_key") if not credentials.get(k)}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].base_url]

    def batch_limit(self, config: Config) -> int:
        return MAX_SEGMENT_IDS

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials)
        exited, exit_failures = keyed_members(batch.exited, cfg.id_type)
        await client.segment("remove_customers", [k.key for k in exited])
        entered, failures = keyed_members(batch.entered, cfg.id_type)
        if cfg.identify:
            refused = await client.identify(entered)
            failures.extend(refused.values())
            entered = [k for k in entered if k.member.profile_id not in refused]
        await client.segment("add_customers", [k.key for k in entered])
        return SendResult(added=len(entered), removed=len(exited), failures=tuple(exit_failures + failures))

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """`DELETE /api/v1/customers/{id | email | cio_…}` for each identifier the person has; deleting
        someone Customer.io does not know is accepted (no error)."""
        client = _Client(session, load_config(config), credentials)
        targets = erase_targets(identifiers)
        for target in targets:
            await client.request("DELETE", "/api/v1/customers/" + quote(target, safe=""), None)
        if not targets:
            return Erasure("skipped", "customerio: no user id, email or cio_id to erase by")
        return Erasure("erased", f"customerio: deleted by {len(targets)} identifier(s)")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        """`GET /api/v1/accounts/region` answers the credentials' region: it must be the configured one."""
        cfg = load_config(config)
        response = await _Client(session, cfg, credentials).request("GET", "/api/v1/accounts/region", None)
        region = as_dict(response.json()).get("data_center")
        if region != cfg.region:
            raise PermanentError(f"customerio: the workspace is in region {region!r}, not {cfg.region!r}")


class _Client:
    def __init__(self, session: HttpClient, cfg: CustomerIoConfig, credentials: Credentials) -> None:
        self.session = session
        self.cfg = cfg
        self.headers = auth_headers(credentials)

    async def request(
        self,
        method: str,
        path: str,
        body: object,
        *,
        params: dict[str, str] | None = None,
        records: bool = False,
    ) -> HttpResponse:
        """`records`: the body carries people's data (v2 batch), so a 400/413 may be one person's fault;
        a segment call carries bare ids, and its 400s (not a manual segment, bad id_type) are not."""
        payload = json_bytes(body) if body is not None else None
        url = self.cfg.base_url + path
        response = await call(self.session, method, url, headers=self.headers, params=params, body=payload)
        if response.status >= 300 and response.status != 207:
            raise classify_error(response, records=records)
        return response

    async def identify(self, keyed: Sequence[Keyed]) -> dict[str, RecordFailure]:
        """Creates or updates each person (a manual segment ignores unknown ids); failures by profile."""
        unique = list(dict.fromkeys(k.key for k in keyed))
        by_key = {k.key: k for k in keyed}
        entries = [identify_entry(by_key[key], self.cfg.id_type) for key in unique]
        refused: dict[str, str] = {}
        for start, end in batch_chunks(entries):
            body = {"batch": entries[start:end]}
            response = await self.request("POST", "/api/v2/batch", body, records=True)
            if response.status == 207:
                errors = batch_errors(response.json(), end - start)
                refused.update({unique[start + i]: reason for i, reason in errors.items()})
        return {
            k.member.profile_id: RecordFailure(k.member.profile_id, refused[k.key], permanent=True)
            for k in keyed
            if k.key in refused
        }

    async def segment(self, operation: str, keys: Sequence[str]) -> None:
        unique = list(dict.fromkeys(keys))
        path = f"/api/v1/segments/{self.cfg.segment_id}/{operation}"
        params = {"id_type": self.cfg.id_type}
        for start in range(0, len(unique), MAX_SEGMENT_IDS):
            await self.request("POST", path, {"ids": unique[start : start + MAX_SEGMENT_IDS]}, params=params)
