"""HubSpot: upsert bodies, 207 correlation, 429 policies, and the client against the fake API."""

from __future__ import annotations

import datetime as dt

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
from activation.destinations.hubspot import HubSpotDestination
from activation.destinations.hubspot_payload import Keyed, classify_error, upsert_body, upsert_outcome
from activation.net import HttpResponse, SafeSession
from tests.fakes.hubspot import FakeHubSpot

DEST = HubSpotDestination()
CREDS = Credentials(
    {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "client_id": "client-id",
        "client_secret": "client-secret",
    }
)


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email], "phone": ["+44 20 7946 0000"]}, {"firstName": "Ann"})


def test_upsert_body_dedupes_keys_and_traces_by_key() -> None:
    keyed = [Keyed(member("a", "x@y.com"), "x@y.com"), Keyed(member("b", "x@y.com"), "x@y.com")]
    body = upsert_body(keyed, "email")
    assert body == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "x@y.com",
                "objectWriteTraceId": "x@y.com",
                "properties": {"email": "x@y.com", "firstname": "Ann", "phone": "+442079460000"},
            }
        ]
    }


def test_207_errors_are_correlated_by_trace_id_not_position() -> None:
    keyed = [Keyed(member("a", "a@y.com"), "a@y.com"), Keyed(member("b", "b@y.com"), "b@y.com")]
    body = {
        "results": [{"id": "7", "objectWriteTraceId": "b@y.com"}],
        "errors": [
            {"category": "VALIDATION_ERROR", "message": "bad", "context": {"objectWriteTraceId": ["a@y.com"]}}
        ],
    }
    ids, failures = upsert_outcome(body, keyed)
    assert ids == {"b@y.com": "7"}
    assert [(f.profile_id, f.permanent) for f in failures] == [("a", True)]


def test_empty_2xx_is_a_retryable_record_failure() -> None:
    _, failures = upsert_outcome({"results": [], "errors": []}, [Keyed(member("a", "a@y.com"), "a@y.com")])
    assert [(f.profile_id, f.permanent) for f in failures] == [("a", False)]


def rate_limited(policy: str) -> HttpResponse:
    return HttpResponse(
        429, {}, orjson.dumps({"status": "error", "errorType": "RATE_LIMIT", "policyName": policy})
    )


def test_rate_limit_policies() -> None:
    now = dt.datetime(2026, 11, 22, 23, 0, 0, tzinfo=dt.UTC)
    secondly = classify_error(rate_limited("TEN_SECONDLY_ROLLING"), now)
    daily = classify_error(rate_limited("DAILY"), now)
    assert isinstance(secondly, RetryableError) and secondly.retry_after_s == 10.0
    assert isinstance(daily, RetryableError) and daily.retry_after_s == 3600.0
    assert isinstance(classify_error(HttpResponse(401, {}, b"{}")), AuthExpiredError)
    assert isinstance(classify_error(HttpResponse(403, {}, b"{}")), PermanentError)


def config(fake: FakeHubSpot, **extra: object) -> dict[str, object]:
    return {"list_id": "42", "base_url": fake.base_url, **extra}


async def test_enter_and_exit_reach_expected_list(hubspot: FakeHubSpot, session: SafeSession) -> None:
    hubspot.add_contact("existing@example.com")
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(150)] + [
        member("e", "existing@example.com")
    ]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(hubspot))
    assert (result.added, result.failures) == (151, ())
    assert len(hubspot.requests_to("batch/upsert")) == 2
    expected = {f"p{i}@example.com" for i in range(150)} | {"existing@example.com"}
    assert hubspot.list_emails("42") == expected

    gone = [member("p0", "p0@example.com"), member("never", "never@example.com")]
    result = await DEST.send(session, SyncBatch("a", exited=gone), CREDS, config(hubspot))
    assert result.removed == 2
    assert hubspot.list_emails("42") == expected - {"p0@example.com"}


async def test_invalid_email_is_a_partial_failure(hubspot: FakeHubSpot, session: SafeSession) -> None:
    people = [
        member("ok", "ok@example.com"),
        Member("bad", {"email": ["bad@@example"]}),
        Member("typo", {"email": ["typo@example."]}),
    ]  # passes our check, HubSpot rejects it
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(hubspot))
    assert result.added == 1
    reasons = {f.profile_id: f.reason for f in result.failures}
    assert reasons["bad"] == "no_email"
    assert "INVALID_EMAIL" in reasons["typo"]
    assert len(hubspot.requests_to("batch/upsert")) == 1
    assert hubspot.list_emails("42") == {"ok@example.com"}


async def test_throttle_then_success(hubspot: FakeHubSpot, session: SafeSession) -> None:
    hubspot.inject("throttle", policy="TEN_SECONDLY_ROLLING")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(hubspot))
    assert info.value.retry_after_s == 10.0
    assert (await DEST.send(session, batch, CREDS, config(hubspot))).added == 1


async def test_expired_token_refreshes_once(hubspot: FakeHubSpot, session: SafeSession) -> None:
    hubspot.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError, match="EXPIRED_AUTHENTICATION"):
        await DEST.send(session, batch, CREDS, config(hubspot))
    fresh = await DEST.refresh_token(session, CREDS, config(hubspot))
    assert (await DEST.send(session, batch, fresh, config(hubspot))).added == 1
    assert hubspot.refresh_calls == 1


async def test_bad_refresh_token_is_permanent(hubspot: FakeHubSpot, session: SafeSession) -> None:
    with pytest.raises(PermanentError, match="invalid_grant"):
        await DEST.refresh_token(session, CREDS.updated({"refresh_token": "revoked"}), config(hubspot))


async def test_dynamic_list_is_refused(hubspot: FakeHubSpot, session: SafeSession) -> None:
    hubspot.add_list("77", processing_type="DYNAMIC")
    with pytest.raises(PermanentError):
        await DEST.test_connection(session, CREDS, config(hubspot, list_id="77"))
    await DEST.test_connection(session, CREDS, config(hubspot))


async def test_gdpr_delete(hubspot: FakeHubSpot, session: SafeSession) -> None:
    await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(hubspot))
    await DEST.delete_member(session, member("p", "A@b.com"), CREDS, config(hubspot))
    await DEST.delete_member(session, member("p", "A@b.com"), CREDS, config(hubspot))  # already gone: fine
    assert hubspot.find("email", "a@b.com") is None
    assert hubspot.list_emails("42") == set()
