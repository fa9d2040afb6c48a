"""SendGrid Marketing Contacts lists: upsert contacts onto the list, remove them from it by contact id.

Entered: `PUT /v3/marketing/contacts` `{"list_ids": [list], "contacts": [{email, first_name,
last_name}]}` in parts of ≤ 30,000 contacts and ≤ 6 MB. SendGrid refuses the whole request for one
invalid address (HTTP 400 naming it): those addresses become per-record failures and the rest is sent
again (at most `MAX_ATTEMPTS` times; an unattributable 400 is a RejectedError the engine splits). The
202 means "queued": import failures that only show in the asynchronous job are not read back.
Exited: `POST /v3/marketing/contacts/search/emails` (≤ 100 addresses; 404 = none) gives contact ids,
then `DELETE /v3/marketing/lists/{list}/contacts?contact_ids=…` (≤ 100 ids). A contact whose import has
not finished yet cannot be found, so it is counted removed without a call (SendGrid indexes within
minutes; the next sync's removal of a re-exited member is unaffected). Contacts stay in Marketing
Contacts (list removal is not deletion). API key in `Authorization: Bearer`: 401/403 are permanent;
429 retries after `X-RateLimit-Reset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    Member,
    PermanentError,
    RecordFailure,
    RejectedError,
    SendResult,
    SyncBatch,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import JSON_HEADERS, call, json_bytes
from activation.destinations.normalize import normalize_email
from activation.destinations.sendgrid_payload import (
    REMOVE_CHUNK,
    SEARCH_CHUNK,
    Contact,
    classify_error,
    contact_of,
    refused_emails,
    search_ids,
    split_contacts,
    upsert_body,
)
from activation.net import HttpClient, HttpResponse

LIST_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MAX_ATTEMPTS = 3  # re-sends of one part after a 400 that named refused addresses


@dataclass(frozen=True)
class SendGridConfig:
    list_id: str
    base_url: str


def read_config(config: Config) -> tuple[SendGridConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = SendGridConfig(
        list_id=r.text("list_id", pattern=LIST_ID),
        base_url=r.url("base_url", default="https://api.sendgrid.com"),
    )
    return parsed, r.errors


def load_config(config: Config) -> SendGridConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


class SendGridDestination:
    type = "sendgrid"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_key") else {"api_key": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [read_config(config)[0].base_url]

    def batch_limit(self, config: Config) -> int:
        return 1000

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        client = _Client(session, load_config(config), credentials)
        entered, failures = with_contacts(batch.entered)
        exited, exit_failures = with_contacts(batch.exited)
        await client.remove([c["email"] for _, c in exited])
        for part in split_contacts(client.cfg.list_id, [c for _, c in entered]):
            failures.extend(await client.upsert(part, entered))
        return SendResult(
            added=len(batch.entered) - len(failures),
            removed=len(exited),
            failures=tuple(failures + exit_failures),
        )

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """Deletes the contact of each email from Marketing Contacts (DELETE /v3/marketing/contacts)."""
        client = _Client(session, load_config(config), credentials)
        emails = sorted({e for e in map(normalize_email, identifiers.get("email", ())) if e})
        if not emails:
            return Erasure("skipped", "sendgrid: no email to erase by")
        ids = await client.find(emails)
        for start in range(0, len(ids), REMOVE_CHUNK):
            await client.request(
                "DELETE", "/v3/marketing/contacts", None, {"ids": ",".join(ids[start : start + REMOVE_CHUNK])}
            )
        return Erasure("erased", f"sendgrid deleted {len(ids)} contact(s)")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        await _Client(session, load_config(config), credentials).require_list()


def with_contacts(members: Sequence[Member]) -> tuple[list[tuple[Member, Contact]], list[RecordFailure]]:
    found, failures = [], []
    for member in members:
        contact = contact_of(member)
        if contact is None:
            failures.append(RecordFailure(member.profile_id, "no_valid_email", permanent=True))
        else:
            found.append((member, contact))
    return found, failures


class _Client:
    def __init__(self, session: HttpClient, cfg: SendGridConfig, credentials: Credentials) -> None:
        self.session, self.cfg = session, cfg
        self.headers = {**JSON_HEADERS, "authorization": f"Bearer {credentials.require('api_key')}"}

    async def request(
        self, method: str, path: str, body: object, params: dict[str, str] | None = None, *, ok: int = 300
    ) -> HttpResponse:
        payload = json_bytes(body) if body is not None else None
        url = self.cfg.base_url + path
        response = await call(self.session, method, url, headers=self.headers, params=params, body=payload)
        if response.status >= 300 and response.status != ok:
            raise classify_error(response)
        return response

    async def upsert(self, part: list[Contact], entered: list[tuple[Member, Contact]]) -> list[RecordFailure]:
        """Send; drop the addresses a 400 names and send the rest again."""
        failures: list[RecordFailure] = []
        for _ in range(MAX_ATTEMPTS):
            body = json_bytes(upsert_body(self.cfg.list_id, part))
            url = f"{self.cfg.base_url}/v3/marketing/contacts"
            response = await call(self.session, "PUT", url, headers=self.headers, body=body)
            if response.status < 300:
                return failures
            error = classify_error(response)
            refused = refused_emails(response.json(), part) if isinstance(error, RejectedError) else {}
            if not refused:
                raise error
            failures += [
                RecordFailure(m.profile_id, refused[c["email"]], True)
                for m, c in entered
                if c["email"] in refused
            ]
            part = [c for c in part if c["email"] not in refused]
            if not part:
                return failures
        raise RejectedError("sendgrid: the list upsert kept being refused")

    async def find(self, emails: list[str]) -> list[str]:
        """Contact ids of the addresses SendGrid knows (search/emails, 100 per call; 404 = none)."""
        unique = list(dict.fromkeys(emails))
        ids: list[str] = []
        for start in range(0, len(unique), SEARCH_CHUNK):
            body = {"emails": unique[start : start + SEARCH_CHUNK]}
            response = await self.request("POST", "/v3/marketing/contacts/search/emails", body, ok=404)
            if response.status == 200:
                ids.extend(search_ids(response.json()).values())
        return ids

    async def remove(self, emails: list[str]) -> None:
        ids = await self.find(emails)
        path = f"/v3/marketing/lists/{self.cfg.list_id}/contacts"
        for start in range(0, len(ids), REMOVE_CHUNK):
            params = {"contact_ids": ",".join(ids[start : start + REMOVE_CHUNK])}
            await self.request("DELETE", path, None, params)

    async def require_list(self) -> None:
        response = await self.request("GET", f"/v3/marketing/lists/{self.cfg.list_id}", None, ok=404)
        if response.status == 404:
            raise PermanentError(f"sendgrid: list {self.cfg.list_id} not found")
