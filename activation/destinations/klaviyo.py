"""Klaviyo lists: profiles are upserted onto the list by a bulk import job, removed by profile id.

Entered: `POST /api/profile-bulk-import-jobs` with the profiles (email and/or E.164 phone, names,
`external_id` only when `send_external_id`) and `relationships.lists` = the list, in parts of ≤ 10,000
profiles and ≤ 5 MB. A 400 whose error pointers name profiles fails those members alone and the rest is
sent again; the 202 means queued — failures Klaviyo finds later while processing the job (its
import-errors) are not read back. Exited: `GET /api/profiles?filter=any(email,[…])` (and
`phone_number` for members without an email; ≤ 100 values and profiles per page, following
`links.next`) gives profile ids, then `DELETE /api/lists/{id}/relationships/profiles` (≤ 1000 ids).
Removing from a list does not unsubscribe or delete the profile, and adding does not grant marketing
consent (Klaviyo's subscription jobs do that; the engine's consent category decides who is sent at all).

Auth: `Authorization: Klaviyo-API-Key <private key>` and the required `revision` header; 401/403 are
permanent (keys are not refreshed); 429 retries after Retry-After; 5xx retryable. `erase` starts a
data-privacy deletion job per email and phone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    Member,
    RecordFailure,
    RejectedError,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import call, json_bytes
from activation.destinations.klaviyo_payload import (
    MAX_RELATIONSHIPS,
    PAGE_SIZE,
    Profile,
    classify_error,
    deletion_body,
    filter_expression,
    import_body,
    next_page,
    profile_ids,
    profile_of,
    refused_indexes,
    relationship_body,
    split_profiles,
)
from activation.destinations.normalize import normalize_email, normalize_phone_e164
from activation.net import HttpClient, HttpResponse

MAX_ATTEMPTS = 3
JSON_API = "application/vnd.api+json"


@dataclass(frozen=True)
class KlaviyoConfig:
    list_id: str
    base_url: str
    revision: str
    send_external_id: bool


def read_config(config: Config) -> tuple[KlaviyoConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = KlaviyoConfig(
        list_id=r.text("list_id", pattern=r"[A-Za-z0-9]{6}"),
        base_url=r.url("base_url", default="https://a.klaviyo.com"),
        revision=r.text("revision", default="2025-01-15", pattern=r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?"),
        send_external_id=r.flag("send_external_id", default=False),
    )
    return parsed, r.errors


def load_config(config: Config) -> KlaviyoConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


class KlaviyoDestination:
    type = "klaviyo"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_key") else {"api_key": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].base_url]

    def batch_limit(self, config: Config) -> int:
        return MAX_RELATIONSHIPS

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        client = _Client(session, load_config(config), credentials)
        exit_failures = await client.remove(batch.exited)
        entered: list[tuple[Member, Profile]] = []
        failures: list[RecordFailure] = []
        for member in batch.entered:
            profile = profile_of(member, external_id=client.cfg.send_external_id)
            if profile is None:
                failures.append(RecordFailure(member.profile_id, "no_email_or_phone", permanent=True))
            else:
                entered.append((member, profile))
        offset = 0
        for part in split_profiles(client.cfg.list_id, [p for _, p in entered]):  # consecutive parts
            failures.extend(await client.import_part(entered[offset : offset + len(part)]))
            offset += len(part)
        return SendResult(
            added=len(batch.entered) - len(failures),
            removed=len(batch.exited) - len(exit_failures),
            failures=tuple(failures + exit_failures),
        )

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        client = _Client(session, load_config(config), credentials)
        await client.request("GET", f"/api/lists/{client.cfg.list_id}", None)

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        client = _Client(session, load_config(config), credentials)
        emails = sorted({e for e in map(normalize_email, identifiers.get("email", ())) if e})
        phones = sorted({p for p in map(normalize_phone_e164, identifiers.get("phone", ())) if p})
        targets = [("email", e) for e in emails] + [("phone_number", p) for p in phones]
        for field, value in targets:
            await client.request("POST", "/api/data-privacy-deletion-jobs", deletion_body(field, value))
        if not targets:
            return Erasure("skipped", "klaviyo: no email or phone to erase by")
        return Erasure("erased", f"klaviyo data-privacy deletion jobs for {len(targets)} identifier(s)")


class _Client:
    def __init__(self, session: HttpClient, cfg: KlaviyoConfig, credentials: Credentials) -> None:
        self.session, self.cfg = session, cfg
        self.headers = {
            "authorization": f"Klaviyo-API-Key {credentials.require('api_key')}",
            "revision": cfg.revision,
            "accept": JSON_API,
            "content-type": JSON_API,
        }

    async def raw(
        self, method: str, url: str, body: object, params: dict[str, str] | None = None
    ) -> HttpResponse:
        payload = json_bytes(body) if body is not None else None
        return await call(self.session, method, url, headers=self.headers, params=params, body=payload)

    async def request(
        self, method: str, path: str, body: object, params: dict[str, str] | None = None
    ) -> HttpResponse:
        response = await self.raw(method, self.cfg.base_url + path, body, params)
        if response.status >= 300:
            raise classify_error(response)
        return response

    async def import_part(self, part: list[tuple[Member, Profile]]) -> list[RecordFailure]:
        failures: list[RecordFailure] = []
        url = f"{self.cfg.base_url}/api/profile-bulk-import-jobs"
        for _ in range(MAX_ATTEMPTS):
            response = await self.raw("POST", url, import_body(self.cfg.list_id, [p for _, p in part]))
            if response.status < 300:
                return failures
            error = classify_error(response)
            refused = refused_indexes(response.json(), len(part)) if isinstance(error, RejectedError) else {}
            if not refused:
                raise error
            failures += [RecordFailure(part[i][0].profile_id, reason, True) for i, reason in refused.items()]
            part = [item for i, item in enumerate(part) if i not in refused]
            if not part:
                return failures
        raise RejectedError("klaviyo: the profile import kept being refused")

    async def lookup(self, field: str, values: list[str]) -> set[str]:
        """Ids of every profile whose `field` is one of `values`, following `links.next`."""
        found: set[str] = set()
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), PAGE_SIZE):
            expression = filter_expression(field, unique[start : start + PAGE_SIZE])
            if expression is None:
                continue
            params = {"filter": expression, "page[size]": str(PAGE_SIZE), "fields[profile]": field}
            page = (await self.request("GET", "/api/profiles", None, params)).json()
            found.update(profile_ids(page))
            while following := next_page(page):
                response = await self.raw("GET", following, None)
                if response.status >= 300:
                    raise classify_error(response)
                page = response.json()
                found.update(profile_ids(page))
        return found

    async def remove(self, exited: Sequence[Member]) -> list[RecordFailure]:
        keyed = [(m, profile_of(m, external_id=False) or {}) for m in exited]
        emails = [str(p["email"]) for _, p in keyed if "email" in p]
        phones = [str(p["phone_number"]) for _, p in keyed if "email" not in p and "phone_number" in p]
        ids = sorted(await self.lookup("email", emails) | await self.lookup("phone_number", phones))
        path = f"/api/lists/{self.cfg.list_id}/relationships/profiles"
        for start in range(0, len(ids), MAX_RELATIONSHIPS):
            await self.request("DELETE", path, relationship_body(ids[start : start + MAX_RELATIONSHIPS]))
        return [RecordFailure(m.profile_id, "no_email_or_phone", permanent=True) for m, p in keyed if not p]
