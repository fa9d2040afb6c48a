"""Mailchimp Marketing API v3: upsert members by subscriber hash, mark audience membership with a tag.

Entered: `PUT /lists/{list}/members/{md5(lower(email))}` (status_if_new) then an active tag.
Exited: the tag goes inactive (default), or the member is unsubscribed or archived (`on_exit`).
Calls run with bounded concurrency: Mailchimp allows 10 simultaneous connections per account.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    AuthExpiredError,
    Config,
    Credentials,
    Erasure,
    Member,
    PermanentError,
    RecordFailure,
    RetryableError,
    SendResult,
    SyncBatch,
)
from activation.destinations.bounded import run_bounded
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import JSON_HEADERS, as_dict, call, excerpt, json_bytes, parse_retry_after
from activation.destinations.normalize import normalize_email
from activation.net import HttpClient, HttpResponse

STATUSES_IF_NEW = ("subscribed", "pending", "transactional", "unsubscribed")
EXIT_ACTIONS = ("remove_tag", "unsubscribe", "archive")
MAX_CONNECTIONS = 10
_Action = Callable[[Member], Awaitable[RecordFailure | None]]


@dataclass(frozen=True)
class MailchimpConfig:
    list_id: str
    base_url: str | None
    data_center: str | None
    tag: str | None
    status_if_new: str
    on_exit: str
    concurrency: int

    def root(self, credentials: Credentials) -> str:
        if self.base_url:
            return self.base_url
        dc = self.data_center or data_center_of(credentials.get("api_key", ""))
        if not dc:
            raise PermanentError(
                "mailchimp: no data center (set data_center or use an api key ending in -usN)"
            )
        return f"https://{dc}.api.mailchimp.com/3.0"


def data_center_of(api_key: str) -> str | None:
    """The `usN` suffix of an API key (`<hex>-us6`), if well-formed."""
    _, sep, dc = api_key.rpartition("-")
    return dc if sep and dc.isalnum() and dc[:2].isalpha() and dc[2:].isdigit() else None


def subscriber_hash(email: str) -> str:
    """MD5 hex of the trimmed, lower-cased address (Mailchimp's member id)."""
    return hashlib.md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def read_config(config: Config) -> tuple[MailchimpConfig, dict[str, str]]:
    r = ConfigReader(config)
    base_url = r.url("base_url") if config.get("base_url") else None
    dc = r.text("data_center", pattern=r"[a-z]{2}\d{1,3}") if config.get("data_center") else None
    tag = r.text("tag") if config.get("tag") else None
    parsed = MailchimpConfig(
        list_id=r.text("list_id", pattern=r"[A-Za-z0-9]+"),
        base_url=base_url,
        data_center=dc,
        tag=tag,
        status_if_new=r.text("status_if_new", default="subscribed", choices=STATUSES_IF_NEW),
        on_exit=r.text("on_exit", default="remove_tag", choices=EXIT_ACTIONS),
        concurrency=r.integer("concurrency", default=5, low=1, high=MAX_CONNECTIONS),
    )
    return parsed, r.errors


def load_config(config: Config) -> MailchimpConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


def auth_headers(credentials: Credentials) -> dict[str, str]:
    token = credentials.get("access_token")
    if token:
        return {**JSON_HEADERS, "authorization": f"Bearer {token}"}
    basic = base64.b64encode(f"magpie:{credentials.require('api_key')}".encode()).decode()
    return {**JSON_HEADERS, "authorization": f"Basic {basic}"}


def upsert_body(member: Member, email: str, status_if_new: str) -> dict[str, object]:
    merge_fields = {}
    first = member.first("first_name", "firstName", "first_name")
    last = member.first("last_name", "lastName", "last_name")
    if first:
        merge_fields["FNAME"] = first.strip()
    if last:
        merge_fields["LNAME"] = last.strip()
    return {"email_address": email, "status_if_new": status_if_new, "merge_fields": merge_fields}


def tags_body(tag: str, active: bool) -> dict[str, object]:
    return {"tags": [{"name": tag, "status": "active" if active else "inactive"}]}


def check_response(response: HttpResponse, *, missing_ok: bool) -> str | None:
    """None on success; a per-record reason for 4xx problems; raises for batch-wide conditions."""
    if response.status < 300 or (missing_ok and response.status == 404):
        return None
    problem = as_dict(response.json())
    reason = (
        f"mailchimp HTTP {response.status} {excerpt(problem.get('title'))}: {excerpt(problem.get('detail'))}"
    )
    if response.status == 429 or response.status >= 500:
        raise RetryableError(reason, parse_retry_after(response.headers.get("retry-after")))
    if response.status == 401:
        raise AuthExpiredError(reason)
    if response.status == 403:
        raise PermanentError(reason)
    return reason


class MailchimpDestination:
    type = "mailchimp"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        if credentials.get("access_token") or data_center_of(credentials.get("api_key", "")):
            return {}
        return {"api_key": "is required (format <key>-<dc>) unless access_token is given"}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.base_url or f"https://{cfg.data_center or 'us1'}.api.mailchimp.com/3.0"]

    def batch_limit(self, config: Config) -> int:
        return 500

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials, cfg.tag or batch.audience_key)
        removed = await client.apply(batch.exited, client.exit_member)
        added = await client.apply(batch.entered, client.enter_member)
        return SendResult(
            added=added.added, removed=removed.added, failures=removed.failures + added.failures
        )

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials, "")
        reason = check_response(await client.request("GET", "", None), missing_ok=False)
        if reason:
            raise PermanentError(reason)

    async def delete_member(
        self, session: HttpClient, member: Member, credentials: Credentials, config: Config
    ) -> None:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials, "")
        for email in _emails(member):
            path = f"/members/{subscriber_hash(email)}/actions/delete-permanent"
            reason = check_response(await client.request("POST", path, None), missing_ok=True)
            if reason:
                raise PermanentError(reason)

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """Permanent delete of each email from the configured audience (a member it lacks is fine)."""
        member = Member("", {"email": list(identifiers.get("email", ()))})
        if not _emails(member):
            return Erasure("skipped", "mailchimp: no email to erase by")
        await self.delete_member(session, member, credentials, config)
        return Erasure("erased", f"mailchimp delete-permanent of {len(_emails(member))} email(s)")


class _Client:
    def __init__(self, session: HttpClient, cfg: MailchimpConfig, credentials: Credentials, tag: str) -> None:
        self.session = session
        self.cfg = cfg
        self.list_url = f"{cfg.root(credentials)}/lists/{cfg.list_id}"
        self.headers = auth_headers(credentials)
        self.tag = tag

    async def request(
        self, method: str, path: str, body: object, params: dict[str, str] | None = None
    ) -> HttpResponse:
        payload = json_bytes(body) if body is not None else None
        return await call(
            self.session, method, self.list_url + path, headers=self.headers, params=params, body=payload
        )

    async def apply(self, members: Sequence[Member], action: _Action) -> SendResult:
        outcomes = await run_bounded(members, action, self.cfg.concurrency)
        failures = tuple(f for f in outcomes if f is not None)
        return SendResult(added=len(members) - len(failures), failures=failures)

    async def enter_member(self, member: Member) -> RecordFailure | None:
        emails = _emails(member)
        if not emails:
            return RecordFailure(member.profile_id, "no_valid_email", permanent=True)
        member_path = f"/members/{subscriber_hash(emails[0])}"
        body = upsert_body(member, emails[0], self.cfg.status_if_new)
        params = {"skip_merge_validation": "true"}
        reason = check_response(await self.request("PUT", member_path, body, params), missing_ok=False)
        if reason is None:
            tags = tags_body(self.tag, active=True)
            reason = check_response(await self.request("POST", f"{member_path}/tags", tags), missing_ok=False)
        return RecordFailure(member.profile_id, reason, permanent=True) if reason else None

    async def exit_member(self, member: Member) -> RecordFailure | None:
        emails = _emails(member)
        if not emails:
            return RecordFailure(member.profile_id, "no_valid_email", permanent=True)
        member_path = f"/members/{subscriber_hash(emails[0])}"
        if self.cfg.on_exit == "unsubscribe":
            response = await self.request("PATCH", member_path, {"status": "unsubscribed"})
        elif self.cfg.on_exit == "archive":
            response = await self.request("DELETE", member_path, None)
        else:
            response = await self.request("POST", f"{member_path}/tags", tags_body(self.tag, active=False))
        reason = check_response(response, missing_ok=True)
        return RecordFailure(member.profile_id, reason, permanent=True) if reason else None


def _emails(member: Member) -> list[str]:
    return [e for e in (normalize_email(raw) for raw in member.values("email")) if e]
