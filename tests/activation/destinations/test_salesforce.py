"""Salesforce: SOQL and collection payloads, result reading, and the client against the fake API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from activation.destinations import (
    AuthExpiredError,
    Credentials,
    Member,
    PermanentError,
    RetryableError,
    SyncBatch,
)
from activation.destinations.salesforce import SalesforceDestination
from activation.destinations.salesforce_payload import (
    campaign_members_soql,
    classify_error,
    new_record,
    read_outcomes,
    records_by_email_soql,
    soql_literal,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.salesforce import FakeSalesforce

DEST = SalesforceDestination()
CAMPAIGN = "701000000000001AAA"
CREDS = Credentials(
    {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "client_id": "client-id",
        "client_secret": "client-secret",
    }
)


@pytest.fixture
async def salesforce() -> AsyncIterator[FakeSalesforce]:
    async with FakeSalesforce() as fake:
        fake.add_campaign(CAMPAIGN)
        yield fake


def config(fake: FakeSalesforce, **extra: object) -> dict[str, object]:
    return {
        "campaign_id": CAMPAIGN,
        "instance_url": fake.base_url,
        "token_url": fake.base_url + "/services/oauth2/token",
        **extra,
    }


def member(pid: str, email: str, **traits: str) -> Member:
    return Member(pid, {"email": [email]}, dict(traits))


def test_soql_literals_are_escaped() -> None:
    assert soql_literal("o'brien\\x@y.com") == "'o\\'brien\\\\x@y.com'"
    soql = records_by_email_soql("Contact", ["a@b.com", "c'd@e.com"])
    assert (
        soql
        == "SELECT Id, Email FROM Contact WHERE Email IN ('a@b.com', 'c\\'d@e.com') ORDER BY CreatedDate ASC"
    )
    members = campaign_members_soql(CAMPAIGN, "ContactId", ["003x"])
    assert members.endswith(f"CampaignId = '{CAMPAIGN}' AND ContactId IN ('003x')")


def test_new_records_fill_required_names() -> None:
    contact = new_record("Contact", member("p", "a@b.com", first_name="Ann"), "a@b.com")
    assert contact == {
        "attributes": {"type": "Contact"},
        "Email": "a@b.com",
        "FirstName": "Ann",
        "LastName": "[not provided]",
    }
    lead = new_record("Lead", member("p", "a@b.com", last_name="Lee", company="Acme"), "a@b.com")
    assert (lead["LastName"], lead["Company"]) == ("Lee", "Acme")


def test_outcomes_are_read_in_request_order_and_missing_ones_are_unknown() -> None:
    body = [
        {"id": "003A", "success": True, "errors": []},
        {
            "success": False,
            "errors": [{"statusCode": "INVALID_EMAIL_ADDRESS", "message": "bad", "fields": ["Email"]}],
        },
    ]
    first, second, third = read_outcomes(body, 3)
    assert (first.ok, first.record_id) == (True, "003A")
    assert (second.ok, second.code, second.fields) == (False, "INVALID_EMAIL_ADDRESS", ("Email",))
    assert (third.ok, third.code) == (False, "NO_RESULT")


def test_error_classification() -> None:
    def response(status: int, code: str) -> HttpResponse:
        return HttpResponse(status, {}, orjson.dumps([{"message": "m", "errorCode": code}]))

    assert isinstance(classify_error(response(401, "INVALID_SESSION_ID")), AuthExpiredError)
    assert isinstance(classify_error(response(403, "REQUEST_LIMIT_EXCEEDED")), RetryableError)
    assert isinstance(classify_error(response(400, "UNABLE_TO_LOCK_ROW")), RetryableError)
    assert isinstance(classify_error(response(503, "SERVER_UNAVAILABLE")), RetryableError)
    assert type(classify_error(response(404, "NOT_FOUND"))) is PermanentError


def test_config_is_open_to_modes() -> None:
    assert DEST.validate_config({"instance_url": "https://x.my.salesforce.com"}) == {
        "campaign_id": "is required"
    }
    traits = {"mode": "traits", "instance_url": "https://x.my.salesforce.com"}
    assert DEST.validate_config({**traits, "mapping": {"plan": "Plan__c"}}) == {}
    assert "mapping" in DEST.validate_config(traits)  # trait sync (salesforce_traits.py) needs a mapping
    assert "mode" in DEST.validate_config({"mode": "nope", "instance_url": "https://x.my.salesforce.com"})


async def test_add_existing_and_new_people_then_remove(
    salesforce: FakeSalesforce, session: SafeSession
) -> None:
    existing = salesforce.add_record("Contact", Email="Old@Example.com", LastName="Old")
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(250)] + [member("old", "old@example.com")]
    batch = SyncBatch("a", entered=people)
    first = await DEST.send(session, batch, CREDS, config(salesforce))
    assert (first.added, first.failures) == (251, ())
    expected = {f"p{i}@example.com" for i in range(250)} | {"old@example.com"}
    assert salesforce.campaign_emails(CAMPAIGN) == expected
    assert len(salesforce.of_type("Contact")) == 251 and existing in salesforce.of_type("Contact")
    again = await DEST.send(session, batch, CREDS, config(salesforce))  # idempotent: already members
    assert (again.added, again.failures, len(salesforce.of_type("CampaignMember"))) == (251, (), 251)

    gone = [
        member("p0", "p0@example.com"),
        member("old", "OLD@example.com"),
        member("never", "never@example.com"),
    ]
    result = await DEST.send(session, SyncBatch("a", exited=gone), CREDS, config(salesforce))
    assert (result.removed, result.failures) == (3, ())
    assert salesforce.campaign_emails(CAMPAIGN) == expected - {"p0@example.com", "old@example.com"}
    assert len(salesforce.of_type("Contact")) == 251  # leaving a campaign deletes no person


async def test_query_pages_are_followed(session: SafeSession) -> None:
    async with FakeSalesforce(page_size=3) as fake:
        fake.add_campaign(CAMPAIGN)
        for i in range(7):
            fake.add_record("Contact", Email=f"p{i}@example.com", LastName="X")
        people = [member(f"p{i}", f"p{i}@example.com") for i in range(7)]
        result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(fake))
        assert result.added == 7 and len(fake.of_type("Contact")) == 7  # nothing re-created
        assert len(fake.requests_to("/query/")) == 2


async def test_leads_and_create_missing_off(salesforce: FakeSalesforce, session: SafeSession) -> None:
    salesforce.add_record("Lead", Email="lead@example.com", LastName="L", Company="C")
    people = [member("l", "lead@example.com"), member("n", "new@example.com")]
    cfg = config(salesforce, record_object="Lead", create_missing=False, member_status="Responded")
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, cfg)
    assert result.added == 1
    assert [(f.profile_id, f.reason, f.permanent) for f in result.failures] == [
        ("n", "not_in_salesforce", True)
    ]
    (cm,) = salesforce.of_type("CampaignMember").values()
    assert cm["Status"] == "Responded" and cm["LeadId"]


async def test_one_refused_and_one_invalid_record_fail_alone(
    salesforce: FakeSalesforce, session: SafeSession
) -> None:
    salesforce.refuse("bad@example.com")
    people = [member("ok", "ok@example.com"), member("bad", "bad@example.com"), member("typo", "typo@example."),
              Member("none", {})]  # fmt: skip
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(salesforce))
    reasons = {f.profile_id: (f.reason, f.permanent) for f in result.failures}
    assert result.added == 1 and set(reasons) == {"bad", "typo", "none"}
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in reasons["bad"][0] and reasons["bad"][1]
    assert reasons["none"] == ("no_email", True)
    assert salesforce.campaign_emails(CAMPAIGN) == {"ok@example.com"}


async def test_wrong_campaign_stops_the_run(salesforce: FakeSalesforce, session: SafeSession) -> None:
    cfg = config(salesforce, campaign_id="701000000000009AAA")
    with pytest.raises(PermanentError, match="check campaign_id"):
        await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, cfg)
    with pytest.raises(PermanentError, match="NOT_FOUND"):
        await DEST.test_connection(session, CREDS, cfg)
    await DEST.test_connection(session, CREDS, config(salesforce))


async def test_throttle_and_lock_are_retryable(salesforce: FakeSalesforce, session: SafeSession) -> None:
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    salesforce.inject("throttle")
    with pytest.raises(RetryableError, match="REQUEST_LIMIT_EXCEEDED"):
        await DEST.send(session, batch, CREDS, config(salesforce))
    salesforce.inject("lock_row", path="/composite/")
    with pytest.raises(RetryableError, match="UNABLE_TO_LOCK_ROW"):
        await DEST.send(session, batch, CREDS, config(salesforce))
    assert (await DEST.send(session, batch, CREDS, config(salesforce))).added == 1


async def test_expired_session_refreshes_at_the_instance(
    salesforce: FakeSalesforce, session: SafeSession
) -> None:
    salesforce.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError, match="INVALID_SESSION_ID"):
        await DEST.send(session, batch, CREDS, config(salesforce))
    fresh = await DEST.refresh_token(session, CREDS, config(salesforce))
    assert fresh["access_token"] != "access-1" and fresh["refresh_token"] == "refresh-1"
    assert (await DEST.send(session, batch, fresh, config(salesforce))).added == 1
    with pytest.raises(PermanentError, match="invalid_grant"):
        await DEST.refresh_token(session, CREDS.updated({"refresh_token": "revoked"}), config(salesforce))


async def test_refresh_for_another_instance_is_refused(
    salesforce: FakeSalesforce, session: SafeSession
) -> None:
    cfg = config(salesforce, instance_url=salesforce.base_url.replace("127.0.0.1", "localhost"))
    with pytest.raises(PermanentError, match="another instance_url"):
        await DEST.refresh_token(session, CREDS, cfg)


async def test_erase_deletes_the_records(salesforce: FakeSalesforce, session: SafeSession) -> None:
    await DEST.send(
        session,
        SyncBatch("a", entered=[member("p", "a@b.com"), member("q", "c@d.com")]),
        CREDS,
        config(salesforce),
    )
    outcome = await DEST.erase(session, CREDS, config(salesforce), {"email": ["A@B.com"]})
    assert outcome.status == "erased"
    assert {r["Email"] for r in salesforce.of_type("Contact").values()} == {"c@d.com"}
    assert (await DEST.erase(session, CREDS, config(salesforce), {"phone": ["+1"]})).status == "skipped"
