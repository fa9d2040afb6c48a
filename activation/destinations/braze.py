"""Braze: audience membership as a **boolean custom attribute** per audience, set through /users/track.

Why an attribute and not a cohort: Braze's Cohort Import endpoints (`/partners/…/cohorts`) are for
Braze technology partners (a partner key issued by Braze), not for a customer's REST API key; a custom
attribute is written with the ordinary `users.track` permission and is directly usable in Braze
segments and Liquid. One boolean per audience (`{prefix}{audience_key}`, default prefix `magpie_`) rather
than one array of audience keys: array attributes are capped in length and an add/remove on a shared
array is the only write that could race, while a boolean is an idempotent set (RudderStack's
braze_audience makes the same choice). Entered sets it true, exited sets it false.

Users are identified by `external_id` (the member's user id; default) or by `email` (`identify_by`);
`_update_existing_only` (config `update_existing_only`, default false) decides whether Braze creates
users it does not know. Requests carry at most 75 attribute objects. A request Braze accepts may still
name failed objects by index: those members fail alone. 400 for the request is a RejectedError (the
engine splits to find the record), 401/403 permanent (API keys are not refreshed), 429 and 5xx retry
after X-RateLimit-Reset. `erase` calls /users/delete by external id or email, 50 per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    Config,
    Credentials,
    Erasure,
    JSONValue,
    Member,
    PermanentError,
    RecordFailure,
    SendResult,
    SyncBatch,
)
from activation.destinations.braze_payload import (
    MAX_DELETE,
    MAX_OBJECTS,
    attribute_name,
    attribute_object,
    chunks,
    classify_error,
    failed_indexes,
    identifier,
)
from activation.destinations.config import ConfigReader, require_valid
from activation.destinations.http import JSON_HEADERS, as_dict, call, json_bytes
from activation.destinations.normalize import normalize_email
from activation.net import HttpClient, HttpResponse

IDENTIFY_BY = ("external_id", "email")
CONNECTION_PROBE = "magpie-connection-test"


@dataclass(frozen=True)
class BrazeConfig:
    base_url: str
    attribute_prefix: str
    identify_by: str
    update_existing_only: bool


def read_config(config: Config) -> tuple[BrazeConfig, dict[str, str]]:
    r = ConfigReader(config)
    parsed = BrazeConfig(
        base_url=r.url("base_url"),
        attribute_prefix=r.text("attribute_prefix", default="magpie_", pattern=r"[A-Za-z0-9_]{0,64}"),
        identify_by=r.text("identify_by", default="external_id", choices=IDENTIFY_BY),
        update_existing_only=r.flag("update_existing_only", default=False),
    )
    return parsed, r.errors


def load_config(config: Config) -> BrazeConfig:
    parsed, errors = read_config(config)
    require_valid(errors)
    return parsed


class BrazeDestination:
    type = "braze"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return {} if credentials.get("api_key") else {"api_key": "is required"}

    def endpoint_urls(self, config: Config) -> list[str]:
        return [u for u in [read_config(config)[0].base_url] if u]

    def batch_limit(self, config: Config) -> int:
        return 750  # ten /users/track requests of 75

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        cfg = load_config(config)
        name = attribute_name(cfg.attribute_prefix, batch.audience_key)
        rows: list[tuple[Member, dict[str, JSONValue]]] = []
        failures: list[RecordFailure] = []
        for members, now_member in ((batch.exited, False), (batch.entered, True)):
            for member in members:
                ident = identifier(member, cfg.identify_by)
                if ident is None:
                    failures.append(RecordFailure(member.profile_id, f"no_{cfg.identify_by}", permanent=True))
                else:
                    rows.append((member, attribute_object(ident, name, now_member, cfg.update_existing_only)))
        client = _Client(session, cfg, credentials)
        for part in chunks(rows):
            for index, kind in (await client.track([obj for _, obj in part])).items():
                if 0 <= index < len(part):
                    failures.append(
                        RecordFailure(part[index][0].profile_id, f"braze: {kind}", permanent=True)
                    )
        failed = {f.profile_id for f in failures}
        return SendResult(
            added=sum(1 for m in batch.entered if m.profile_id not in failed),
            removed=sum(1 for m in batch.exited if m.profile_id not in failed),
            failures=tuple(failures),
        )

    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        """An update-only write for a user that does not exist: checks the key, changes nothing."""
        client = _Client(session, load_config(config), credentials)
        probe: dict[str, JSONValue] = {"external_id": CONNECTION_PROBE, "_update_existing_only": True}
        await client.track([probe])

    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        client = _Client(session, load_config(config), credentials)
        external_ids = sorted({v.strip() for v in identifiers.get("user_id", ()) if v.strip()})
        emails = sorted({e for e in map(normalize_email, identifiers.get("email", ())) if e})
        for key, values in (("external_ids", external_ids), ("email_addresses", emails)):
            for start in range(0, len(values), MAX_DELETE):
                await client.post("/users/delete", {key: values[start : start + MAX_DELETE]})
        if not external_ids and not emails:
            return Erasure("skipped", "braze: no user id or email to delete by")
        return Erasure("erased", f"braze /users/delete of {len(external_ids)} id(s), {len(emails)} email(s)")


class _Client:
    def __init__(self, session: HttpClient, cfg: BrazeConfig, credentials: Credentials) -> None:
        self.session, self.cfg = session, cfg
        self.headers = {**JSON_HEADERS, "authorization": f"Bearer {credentials.require('api_key')}"}

    async def post(self, path: str, body: object) -> HttpResponse:
        url = self.cfg.base_url + path
        response = await call(self.session, "POST", url, headers=self.headers, body=json_bytes(body))
        if response.status >= 300:
            raise classify_error(response)
        message = as_dict(response.json()).get("message")
        if message != "success":
            raise PermanentError(f"braze: request not accepted ({str(message)[:200]})")
        return response

    async def track(self, attributes: list[dict[str, JSONValue]]) -> dict[int, str]:
        """One request of at most MAX_OBJECTS objects; the failed objects' indexes."""
        response = await self.post("/users/track", {"attributes": attributes[:MAX_OBJECTS]})
        return failed_indexes(response.json())
