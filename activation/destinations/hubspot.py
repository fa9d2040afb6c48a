"""HubSpot: upsert contacts by email (batches of 100), then add/remove their record ids on a list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activation.destinations import hubspot_traits
from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    Member,
    PermanentError,
    RecordFailure,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import JSON_HEADERS, as_dict, call, json_bytes
from activation.destinations.hubspot_payload import (
    MAX_BATCH,
    Keyed,
    classify_error,
    member_key,
    read_body,
    read_outcome,
    upsert_body,
    upsert_outcome,
)
from activation.destinations.oauth import refresh_access_token
from activation.destinations.trait_mapping import is_trait_mode
from activation.net import HttpClient, HttpResponse

MEMBERSHIP_CHUNK = 10_000


@dataclass(frozen=True)
class HubSpotConfig:
    list_id: str
    base_url: str
    token_url: str
    id_property: str


def read_config(config: Config) -> tuple[HubSpotConfig, dict[str, str]]:
    r = ConfigReader(config)
    base_url = r.url("base_url", default="https://api.hubapi.com")
    traits = is_trait_mode(config)  # trait sync (hubspot_traits.py) writes properties, not a list
    r.errors.update(hubspot_traits.validate(config) if traits else {})
    parsed = HubSpotConfig(
        list_id="" if traits else r.text("list_id", pattern=r"\d+"),
        base_url=base_url,
        token_url=r.url("token_url", default=f"{base_url}/oauth/v1/token"),
        id_property=r.text("id_property", default="email", pattern=r"[a-z][a-z0-9_]*"),
    )
    return parsed, r.errors


def load_config(config: Config) -> HubSpotConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_headers(credentials: Credentials) -> dict[str, str]:
    return {**JSON_HEADERS, "authorization": f"Bearer {credentials.require('access_token')}"}


class HubSpotDestination:
    type = "hubspot"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.base_url, cfg.token_url]

    def batch_limit(self, config: Config) -> int:
        return MAX_BATCH

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        if is_trait_mode(config):
            return await hubspot_traits.send(session, load_config(config).base_url, batch, credentials)
        client = _Client(session, load_config(config), credentials)
        entered, failures = client.keyed(batch.entered)
        exited, exit_failures = client.keyed(batch.exited)
        to_add: dict[str, str] = {}
        for start in range(0, len(entered), MAX_BATCH):
            ids, chunk_failures = await client.upsert(entered[start : start + MAX_BATCH])
            to_add.update(ids)
            failures.extend(chunk_failures)
        to_remove: dict[str, str] = {}
        for start in range(0, len(exited), MAX_BATCH):
            to_remove.update(await client.lookup([k.key for k in exited[start : start + MAX_BATCH]]))
        await client.update_membership(sorted(set(to_add.values())), sorted(set(to_remove.values())))
        added = sum(1 for k in entered if k.key in to_add)
        return SendResult(added=added, removed=len(exited), failures=tuple(failures + exit_failures))

    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        return await refresh_access_token(session, load_config(config).token_url, credentials, "hubspot")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials)
        if is_trait_mode(config):
            await client.request("GET", "/crm/v3/objects/contacts?limit=1", None)
            return
        response = await client.request("GET", f"/crm/v3/lists/{cfg.list_id}", None)
        kind = as_dict(as_dict(response.json()).get("list")).get("processingType")
        if kind not in ("MANUAL", "SNAPSHOT"):
            raise PermanentError(f"hubspot: list {cfg.list_id} is {kind}, not a static (MANUAL) list")

    async def delete_member(
        self, session: HttpClient, member: Member, credentials: Credentials, config: Config
    ) -> None:
        client = _Client(session, load_config(config), credentials)
        key = member_key(member, "email")
        if key is not None:
            body = {"objectId": key, "idProperty": "email"}
            await client.request("POST", "/crm/v3/objects/contacts/gdpr-delete", body, missing_ok=True)

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """GDPR delete of the contact of each email (HubSpot blocklists an email it does not know)."""
        emails = sorted({e.strip().lower() for e in identifiers.get("email", ()) if e.strip()})
        for email in emails:
            await self.delete_member(session, Member("", {"email": [email]}), credentials, config)
        if not emails:
            return Erasure("skipped", "hubspot: no email to erase by")
        return Erasure("erased", f"hubspot gdpr-delete of {len(emails)} email(s)")


class _Client:
    def __init__(self, session: HttpClient, cfg: HubSpotConfig, credentials: Credentials) -> None:
        self.session = session
        self.cfg = cfg
        self.headers = auth_headers(credentials)

    def keyed(self, members: Sequence[Member]) -> tuple[list[Keyed], list[RecordFailure]]:
        keyed, failures = [], []
        for member in members:
            key = member_key(member, self.cfg.id_property)
            if key is None:
                failures.append(
                    RecordFailure(member.profile_id, f"no_{self.cfg.id_property}", permanent=True)
                )
            else:
                keyed.append(Keyed(member, key))
        return keyed, failures

    async def request(
        self, method: str, path: str, body: object, *, missing_ok: bool = False, records: bool = False
    ) -> HttpResponse:
        payload = json_bytes(body) if body is not None else None
        url = self.cfg.base_url + path
        response = await call(self.session, method, url, headers=self.headers, body=payload)
        if response.status >= 300 and not (missing_ok and response.status == 404):
            raise classify_error(response, records=records)
        return response

    async def upsert(self, keyed: Sequence[Keyed]) -> tuple[dict[str, str], list[RecordFailure]]:
        body = upsert_body(keyed, self.cfg.id_property)
        response = await self.request("POST", "/crm/v3/objects/contacts/batch/upsert", body, records=True)
        return upsert_outcome(response.json(), keyed)

    async def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        body = read_body(keys, self.cfg.id_property)
        response = await self.request("POST", "/crm/v3/objects/contacts/batch/read", body)
        return read_outcome(response.json(), self.cfg.id_property)

    async def update_membership(self, add: list[str], remove: list[str]) -> None:
        path = f"/crm/v3/lists/{self.cfg.list_id}/memberships/add-and-remove"
        for start in range(0, max(len(add), len(remove)), MEMBERSHIP_CHUNK):
            body = {
                "recordIdsToAdd": add[start : start + MEMBERSHIP_CHUNK],
                "recordIdsToRemove": remove[start : start + MEMBERSHIP_CHUNK],
            }
            await self.request("PUT", path, body)
