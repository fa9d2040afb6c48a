"""Salesforce REST: SOQL text, sObject Collections bodies and result reading, error classification (pure).

Facts (reference/destinations.md §11, confirmed against developer.salesforce.com "Delete Records Using
sObject Collections" and the collections upsert page): collections take at most 200 records or ids per
call; a well-formed request answers HTTP 200 with one result per record *in request order*
(`{"id", "success", "errors": [{"statusCode", "message", "fields"}]}`); a malformed one 400. Request-level
errors are a JSON *array* `[{"message", "errorCode"}]`. Salesforce throttles with 403
REQUEST_LIMIT_EXCEEDED (never 429); an expired token is 401 INVALID_SESSION_ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from activation.destinations.base import (
    AuthExpiredError,
    DestinationError,
    Member,
    PermanentError,
    RetryableError,
)
from activation.destinations.http import as_dict, as_list, excerpt, parse_retry_after
from activation.destinations.normalize import normalize_email
from activation.net import HttpResponse

MAX_COLLECTION = 200  # records (or ids) per sObject Collections call
QUERY_CHUNK = 100  # emails per SOQL IN (...) list: keeps the GET URL far below Salesforce's 16 KB
NOT_PROVIDED = "[not provided]"  # Salesforce's own filler for required name fields (Web-to-Lead)
ALREADY_DONE = frozenset({"DUPLICATE_VALUE", "ENTITY_IS_DELETED"})  # already a member / already gone
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})


@dataclass(frozen=True)
class Outcome:
    """One collection result: the record id on success, else the first error."""

    ok: bool
    record_id: str | None = None
    code: str = ""
    message: str = ""
    fields: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return f"salesforce {self.code}: {self.message}"


def member_email(member: Member) -> str | None:
    emails = [e for e in map(normalize_email, member.values("email")) if e]
    return emails[0] if emails else None


def soql_literal(value: str) -> str:
    """A SOQL string literal: backslash and single quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def records_by_email_soql(sobject: str, emails: Sequence[str]) -> str:
    values = ", ".join(soql_literal(e) for e in emails)
    return f"SELECT Id, Email FROM {sobject} WHERE Email IN ({values}) ORDER BY CreatedDate ASC"


def campaign_members_soql(campaign_id: str, id_field: str, record_ids: Sequence[str]) -> str:
    values = ", ".join(soql_literal(r) for r in record_ids)
    return (
        f"SELECT Id, {id_field} FROM CampaignMember"
        f" WHERE CampaignId = {soql_literal(campaign_id)} AND {id_field} IN ({values})"
    )


def new_record(sobject: str, member: Member, email: str) -> dict[str, object]:
    """A Contact or Lead to create; LastName (and a Lead's Company) are required by Salesforce."""
    first = member.first("first_name", "first_name", "firstName")
    last = member.first("last_name", "last_name", "lastName")
    record: dict[str, object] = {"attributes": {"type": sobject}, "Email": email}
    if first:
        record["FirstName"] = first.strip()[:40]
    record["LastName"] = last.strip()[:80] if last else NOT_PROVIDED
    if sobject == "Lead":
        company = member.first("company", "company", "company_name")
        record["Company"] = company.strip()[:255] if company else NOT_PROVIDED
    return record


def campaign_member(campaign_id: str, id_field: str, record_id: str, status: str | None) -> dict[str, object]:
    record: dict[str, object] = {
        "attributes": {"type": "CampaignMember"},
        "CampaignId": campaign_id,
        id_field: record_id,
    }
    if status:
        record["Status"] = status
    return record


def collection_body(records: Sequence[dict[str, object]]) -> dict[str, object]:
    return {"allOrNone": False, "records": list(records)}


def read_outcomes(body: object, expected: int) -> list[Outcome]:
    """Results in request order; a missing result is a retryable unknown."""
    outcomes = []
    for item in map(as_dict, as_list(body)):
        if item.get("success") is True:
            outcomes.append(Outcome(True, str(item.get("id") or "")))
            continue
        error = as_dict((as_list(item.get("errors")) or [{}])[0])
        fields = tuple(str(f) for f in as_list(error.get("fields")))
        outcomes.append(
            Outcome(False, None, str(error.get("statusCode", "")), excerpt(error.get("message")), fields)
        )
    missing = Outcome(False, None, "NO_RESULT", "no result for this record")
    return (outcomes + [missing] * expected)[:expected]


def query_records(body: object) -> tuple[list[dict[str, object]], str | None]:
    """Records of one query page and the `nextRecordsUrl` when more pages remain."""
    page = as_dict(body)
    records = [as_dict(r) for r in as_list(page.get("records"))]
    following = page.get("nextRecordsUrl")
    return records, following if isinstance(following, str) and page.get("done") is False else None


def classify_error(response: HttpResponse) -> DestinationError:
    first = as_dict((as_list(response.json()) or [response.json()])[0])
    code = str(first.get("errorCode") or first.get("error") or "")
    reason = f"salesforce HTTP {response.status} {code}: {excerpt(first.get('message'))}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if response.status == 401 or code == "INVALID_SESSION_ID":
        return AuthExpiredError(reason)
    if code in RETRYABLE_CODES or response.status >= 500:
        return RetryableError(reason, retry_after)
    return PermanentError(reason)
