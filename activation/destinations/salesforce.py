"""Salesforce audience sync: audience membership as **Campaign membership** (CampaignMember records).

Why campaign membership and not a list field: a Campaign is Salesforce's own audience object — members
can be Contacts or Leads, each membership is a record with a status and history that reports, Campaign
Influence and marketing tools already read, and adding or removing one person touches nothing else on
the Contact. A list-style field (a checkbox per audience or a multi-select picklist of audience keys)
needs a schema change per audience, a read-modify-write for every edit (a picklist holds all audiences
in one value, so two syncs race), and collides with trait sync, which owns Contact fields (mode
"traits"). The cost is one extra object: records are first resolved (or created) by Email.

Entered: SOQL `SELECT Id, Email FROM {Contact|Lead} WHERE Email IN (...)` (100 emails per query,
following `nextRecordsUrl`); people without a record are created through sObject Collections POST
(`create_missing`, default true; LastName/Company fall back to Salesforce's "[not provided]"), then
CampaignMember records are inserted through sObject Collections (200 per call, `allOrNone: false`).
Results come back in request order; DUPLICATE_VALUE ("already a campaign member") counts as done, an
error on CampaignId (wrong or inactive campaign) stops the run, any other per-record error fails only
that member. Exited: the members' records are found by Email, their CampaignMember ids queried, and
deleted with `DELETE /composite/sobjects?ids=…&allOrNone=false` (ENTITY_IS_DELETED counts as done).
Retried sends are idempotent: a record created by a lost response is found by Email next time.

Auth: OAuth 2 Bearer against the configured `instance_url`; 401 INVALID_SESSION_ID → AuthExpiredError
and `refresh_token` (`grant_type=refresh_token` at `token_url`). The token answer carries an
`instance_url`; if it names another host the refresh fails and asks for the config to be updated (the
SSRF check covers configured URLs only). `mode` selects what the destination does: "audience" (this
module); "traits" is the CRM trait sync, dispatched elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from activation.destinations import salesforce_traits
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
from activation.destinations.http import (
    JSON_HEADERS,
    as_dict,
    call,
    json_bytes,
)
from activation.destinations.normalize import normalize_email
from activation.destinations.salesforce_oauth import refresh
from activation.destinations.salesforce_payload import (
    ALREADY_DONE,
    MAX_COLLECTION,
    QUERY_CHUNK,
    RETRYABLE_CODES,
    Outcome,
    campaign_member,
    campaign_members_soql,
    classify_error,
    collection_body,
    member_email,
    new_record,
    query_records,
    read_outcomes,
    records_by_email_soql,
)
from activation.destinations.trait_mapping import is_trait_mode
from activation.net import HttpClient, HttpResponse

MODES = ("audience", "traits")
ID_FIELDS = {"Contact": "ContactId", "Lead": "LeadId"}
CAMPAIGN_ID = r"701[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?"


@dataclass(frozen=True)
class SalesforceConfig:
    mode: str
    instance_url: str
    token_url: str
    api_version: str
    campaign_id: str
    record_object: str
    create_missing: bool
    member_status: str | None

    @property
    def data_path(self) -> str:
        return f"/services/data/{self.api_version}"

    @property
    def id_field(self) -> str:
        return ID_FIELDS[self.record_object]


def read_config(config: Config) -> tuple[SalesforceConfig, dict[str, str]]:
    """Shared by every mode: `mode` (default "audience") decides which fields are required."""
    r = ConfigReader(config)
    mode = r.text("mode", default="audience", choices=MODES)
    audience = mode == "audience"
    status = r.text("member_status") if config.get("member_status") else None
    parsed = SalesforceConfig(
        mode=mode,
        instance_url=r.url("instance_url"),
        token_url=r.url("token_url", default="https://login.salesforce.com/services/oauth2/token"),
        api_version=r.text("api_version", default="v62.0", pattern=r"v\d{2,3}\.0"),
        campaign_id=r.text("campaign_id", pattern=CAMPAIGN_ID) if audience else "",
        record_object=r.text("record_object", default="Contact", choices=tuple(ID_FIELDS)),
        create_missing=r.flag("create_missing", default=True),
        member_status=status,
    )
    return parsed, r.errors


def load_config(config: Config) -> SalesforceConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


class SalesforceDestination:
    type = "salesforce"

    def validate_config(self, config: Config) -> dict[str, str]:
        errors = read_config(config)[1]
        return {**errors, **salesforce_traits.validate(config)} if is_trait_mode(config) else errors

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("access_token") else {"access_token": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [u for u in (cfg.instance_url, cfg.token_url) if u]

    def batch_limit(self, config: Config) -> int:
        return MAX_COLLECTION

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        if is_trait_mode(config):  # CRM trait sync: salesforce_traits.py
            return await salesforce_traits.send(session, cfg.instance_url + cfg.data_path, cfg.record_object,
                                                batch, credentials, config)  # fmt: skip
        if cfg.mode != "audience":
            raise PermanentError(f"salesforce: mode {cfg.mode!r} is not handled by the audience sync")
        client = _Client(session, cfg, credentials)
        entered, failures = keyed(batch.entered)
        exited, exit_failures = keyed(batch.exited)
        removal = await client.remove(exited)
        addition = await client.add(entered)
        return SendResult(
            added=len(entered) - len(addition),
            removed=len(exited) - len(removal),
            failures=tuple(failures + exit_failures + removal + addition),
        )

    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        cfg = load_config(config)
        return await refresh(session, cfg.token_url, cfg.instance_url, credentials)

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """Deletes the Contacts (or Leads) of each email; their campaign memberships go with them."""
        client = _Client(session, load_config(config), credentials)
        emails = sorted({e for e in map(normalize_email, identifiers.get("email", ())) if e})
        if not emails:
            return Erasure("skipped", "salesforce: no email to erase by")
        ids = list((await client.find(emails)).values())
        for start in range(0, len(ids), MAX_COLLECTION):
            await client.delete(ids[start : start + MAX_COLLECTION])
        return Erasure("erased", f"salesforce deleted {len(ids)} {client.cfg.record_object} record(s)")

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        cfg = load_config(config)
        client = _Client(session, cfg, credentials)
        if is_trait_mode(config):
            await client.request("GET", f"{cfg.data_path}/sobjects/{cfg.record_object}/describe")
            return
        path = f"{cfg.data_path}/sobjects/Campaign/{cfg.campaign_id}"
        body = as_dict((await client.request("GET", path, params={"fields": "Id,IsActive"})).json())
        if body.get("IsActive") is False:
            raise PermanentError(f"salesforce: campaign {cfg.campaign_id} is not active")


def keyed(members: Sequence[Member]) -> tuple[list[tuple[Member, str]], list[RecordFailure]]:
    found, failures = [], []
    for member in members:
        email = member_email(member)
        if email is None:
            failures.append(RecordFailure(member.profile_id, "no_email", permanent=True))
        else:
            found.append((member, email))
    return found, failures


@dataclass
class _Client:
    session: HttpClient
    cfg: SalesforceConfig
    credentials: Credentials
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        token = self.credentials.require("access_token")
        self.headers = {**JSON_HEADERS, "authorization": f"Bearer {token}"}

    async def request(
        self, method: str, path: str, body: object = None, params: dict[str, str] | None = None
    ) -> HttpResponse:
        payload = json_bytes(body) if body is not None else None
        url = self.cfg.instance_url + path
        response = await call(self.session, method, url, headers=self.headers, params=params, body=payload)
        if response.status >= 300:
            raise classify_error(response)
        return response

    async def query(self, soql: str) -> list[dict[str, object]]:
        response = await self.request("GET", f"{self.cfg.data_path}/query", params={"q": soql})
        records, following = query_records(response.json())
        while following:
            page, following = query_records((await self.request("GET", following)).json())
            records.extend(page)
        return records

    async def find(self, emails: Sequence[str]) -> dict[str, str]:
        """Record id by lower-cased email (the oldest record when several share an address)."""
        unique = list(dict.fromkeys(emails))
        found: dict[str, str] = {}
        for start in range(0, len(unique), QUERY_CHUNK):
            soql = records_by_email_soql(self.cfg.record_object, unique[start : start + QUERY_CHUNK])
            for record in await self.query(soql):
                found.setdefault(str(record.get("Email", "")).lower(), str(record.get("Id")))
        return found

    async def collection(self, records: list[dict[str, object]]) -> list[Outcome]:
        path = f"{self.cfg.data_path}/composite/sobjects"
        response = await self.request("POST", path, collection_body(records))
        return read_outcomes(response.json(), len(records))

    async def delete(self, record_ids: list[str]) -> list[Outcome]:
        params = {"ids": ",".join(record_ids), "allOrNone": "false"}
        response = await self.request("DELETE", f"{self.cfg.data_path}/composite/sobjects", params=params)
        return read_outcomes(response.json(), len(record_ids))

    async def create(self, missing: list[tuple[Member, str]]) -> tuple[dict[str, str], list[RecordFailure]]:
        by_email = {email: member for member, email in missing}
        emails = list(by_email)
        created: dict[str, str] = {}
        failures: list[RecordFailure] = []
        for start in range(0, len(emails), MAX_COLLECTION):
            chunk = emails[start : start + MAX_COLLECTION]
            records = [new_record(self.cfg.record_object, by_email[e], e) for e in chunk]
            for email, outcome in zip(chunk, await self.collection(records), strict=True):
                if outcome.ok and outcome.record_id:
                    created[email] = outcome.record_id
                else:
                    failures.extend(_failures(missing, email, outcome))
        return created, failures

    async def add(self, entered: list[tuple[Member, str]]) -> list[RecordFailure]:
        ids = await self.find([email for _, email in entered])
        missing = [(m, e) for m, e in entered if e not in ids]
        failures: list[RecordFailure] = []
        if missing and self.cfg.create_missing:
            created, failures = await self.create(missing)
            ids.update(created)
        elif missing:
            failures = [RecordFailure(m.profile_id, "not_in_salesforce", permanent=True) for m, _ in missing]
        records = list(dict.fromkeys(ids[e] for _, e in entered if e in ids))
        by_record = {ids[e]: e for _, e in entered if e in ids}
        for start in range(0, len(records), MAX_COLLECTION):
            chunk = records[start : start + MAX_COLLECTION]
            rows = [
                campaign_member(self.cfg.campaign_id, self.cfg.id_field, r, self.cfg.member_status)
                for r in chunk
            ]
            for record_id, outcome in zip(chunk, await self.collection(rows), strict=True):
                if outcome.ok or outcome.code in ALREADY_DONE:
                    continue
                if "CampaignId" in outcome.fields:
                    raise PermanentError(f"{outcome.reason} (check campaign_id)")
                failures.extend(_failures(entered, by_record[record_id], outcome))
        return failures

    async def remove(self, exited: list[tuple[Member, str]]) -> list[RecordFailure]:
        ids = await self.find([email for _, email in exited])
        email_of = {record_id: email for email, record_id in ids.items()}
        records = list(email_of)
        members: dict[str, str] = {}  # CampaignMember id → record id
        for start in range(0, len(records), QUERY_CHUNK):
            soql = campaign_members_soql(
                self.cfg.campaign_id, self.cfg.id_field, records[start : start + QUERY_CHUNK]
            )
            for row in await self.query(soql):
                members[str(row.get("Id"))] = str(row.get(self.cfg.id_field))
        failures: list[RecordFailure] = []
        member_ids = list(members)
        for start in range(0, len(member_ids), MAX_COLLECTION):
            chunk = member_ids[start : start + MAX_COLLECTION]
            for cm_id, outcome in zip(chunk, await self.delete(chunk), strict=True):
                if not outcome.ok and outcome.code not in ALREADY_DONE:
                    failures.extend(_failures(exited, email_of[members[cm_id]], outcome))
        return failures


def _failures(members: list[tuple[Member, str]], email: str, outcome: Outcome) -> list[RecordFailure]:
    permanent = outcome.code not in RETRYABLE_CODES and outcome.code != "NO_RESULT"
    return [RecordFailure(m.profile_id, outcome.reason, permanent) for m, e in members if e == email]
