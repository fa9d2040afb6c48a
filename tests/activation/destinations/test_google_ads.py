"""Google Ads Customer Match: pure payload/response tests, then the client against the fake API."""

from __future__ import annotations

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
from activation.destinations.google_ads import GoogleAdsDestination
from activation.destinations.google_ads_payload import (
    build_operations,
    chunk_operations,
    classify_error,
    contact_identifiers,
    partial_failures,
)
from activation.destinations.normalize import sha256_hex
from activation.net import AllowList, HttpResponse, SafeSession
from tests.fakes.google_ads import FakeGoogleAds

JOHNSMITH_GMAIL = "3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586"
PLUS_E164 = "d360a79e746532a6a1e7b8164440b04cdd8797e23126f7a4de7a4b67fdcdba98"
JOHN = "96d9632f363564cc3032521409cf22a852f2032eec099ed5967c0d000cec607a"
SMITH = "6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd"
DEST = GoogleAdsDestination()


def member(pid: str, email: str | None = None, **identifiers: list[str]) -> Member:
    ids = {"email": [email]} if email else {}
    return Member(pid, {**ids, **identifiers})


def test_identifiers_are_one_oneof_field_each_with_plain_address_codes() -> None:
    m = Member(
        "p1",
        {
            "email": [" John.Smith@Gmail.com"],
            "phone": ["+1 212-565-0000"],
            "first_name": [" John "],
            "last_name": ["SMITH"],
            "country": ["us"],
            "zip": ["94045"],
        },
    )
    assert contact_identifiers(m, gmail_rule=True) == [
        {"hashedEmail": JOHNSMITH_GMAIL},
        {"hashedPhoneNumber": PLUS_E164},
        {
            "addressInfo": {
                "hashedFirstName": JOHN,
                "hashedLastName": SMITH,
                "countryCode": "US",
                "postalCode": "94045",
            }
        },
    ]


def test_gmail_rule_can_be_switched_off() -> None:
    found = contact_identifiers(member("p", "john.smith@gmail.com"), gmail_rule=False)
    assert found == [{"hashedEmail": sha256_hex("john.smith@gmail.com")}]


def test_address_needs_all_four_parts() -> None:
    m = Member("p", {"first_name": ["a"], "last_name": ["b"], "country": ["US"]})
    assert contact_identifiers(m, gmail_rule=True) == []


def test_operations_hold_at_most_20_identifiers_and_one_user() -> None:
    emails = [f"user{i}@example.com" for i in range(45)]
    ops, unmatchable = build_operations(
        [Member("big", {"email": emails}), member("none")], "create", "CONTACT_INFO", gmail_rule=True
    )
    assert [len(op.identifiers) for op in ops] == [20, 20, 5]
    assert {op.profile_id for op in ops} == {"big"}
    assert unmatchable == ["none"]


def test_requests_are_chunked_by_identifier_count() -> None:
    ops, _ = build_operations(
        [member(f"p{i}", f"u{i}@example.com") for i in range(25)], "remove", "CONTACT_INFO", gmail_rule=True
    )
    assert [len(chunk) for chunk in chunk_operations(ops, 10)] == [10, 10, 5]


def test_crm_id_lists_send_third_party_user_ids() -> None:
    ops, _ = build_operations([member("p", "a@b.co", user_id=["u-1"])], "create", "CRM_ID", gmail_rule=True)
    assert ops[0].to_json() == {"create": {"userIdentifiers": [{"thirdPartyUserId": "u-1"}]}}


def error_response(
    status: int, errors: list[dict[str, object]], headers: dict[str, str] | None = None
) -> HttpResponse:
    body = {"error": {"code": status, "message": "m", "status": "X", "details": [{"errors": errors}]}}
    return HttpResponse(status, headers or {}, orjson.dumps(body))


def test_concurrent_modification_is_retryable_even_as_400() -> None:
    err = classify_error(error_response(400, [{"errorCode": {"databaseError": "CONCURRENT_MODIFICATION"}}]))
    assert isinstance(err, RetryableError)


def test_quota_error_carries_retry_delay() -> None:
    errors = [
        {
            "errorCode": {"quotaError": "RESOURCE_EXHAUSTED"},
            "details": {"quotaErrorDetails": {"retryDelay": "42s"}},
        }
    ]
    err = classify_error(error_response(429, errors))
    assert isinstance(err, RetryableError)
    assert err.retry_after_s == 42.0


def test_other_400s_are_permanent_and_401_is_auth() -> None:
    assert isinstance(
        classify_error(error_response(400, [{"errorCode": {"fieldError": "REQUIRED"}}])), PermanentError
    )
    assert isinstance(classify_error(error_response(401, [])), AuthExpiredError)


def test_partial_failure_maps_operation_index() -> None:
    body = {
        "partialFailureError": {
            "code": 3,
            "details": [
                {
                    "errors": [
                        {
                            "errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                            "message": "bad",
                            "location": {"fieldPathElements": [{"fieldName": "operations", "index": 2}]},
                        }
                    ]
                }
            ],
        }
    }
    [failure] = partial_failures(body)
    assert (failure.operation_index, failure.code, failure.retryable) == (2, "INVALID_SHA256_FORMAT", False)
    assert partial_failures({"partialFailureError": {"code": 0}}) == []


# --- against the fake --------------------------------------------------------------------------------


def config(fake: FakeGoogleAds, **extra: object) -> dict[str, object]:
    return {
        "customer_id": "123-456-7890",
        "user_list_id": "987654",
        "base_url": fake.base_url,
        "token_url": fake.base_url + "/token",
        **extra,
    }


CREDS = Credentials(
    {
        "developer_token": "dev-token",
        "access_token": "access-1",
        "client_id": "client-id",
        "client_secret": "client-secret",
        "refresh_token": "refresh-1",
    }
)


async def test_add_then_remove_reaches_expected_membership(
    google: FakeGoogleAds, session: SafeSession
) -> None:
    entered = [member(f"p{i}", f"User{i}@Example.com") for i in range(5)]
    result = await DEST.send(session, SyncBatch("vip", entered=entered), CREDS, config(google))
    assert (result.added, result.failures) == (5, ())
    assert google.members("1234567890", "987654") == {sha256_hex(f"user{i}@example.com") for i in range(5)}

    result = await DEST.send(session, SyncBatch("vip", exited=entered[:2]), CREDS, config(google))
    assert result.removed == 2
    assert google.members("1234567890", "987654") == {sha256_hex(f"user{i}@example.com") for i in range(2, 5)}
    assert all(job.status == "SUCCESS" for job in google.jobs.values())


async def test_large_batches_use_several_add_operations_on_one_job(
    google: FakeGoogleAds, session: SafeSession
) -> None:
    entered = [member(f"p{i}", f"u{i}@example.com") for i in range(30)]
    await DEST.send(
        session, SyncBatch("a", entered=entered), CREDS, config(google, identifiers_per_request=7)
    )
    assert len(google.requests_to(":addOperations")) == 5
    assert len(google.requests_to(":create")) == 1
    assert len(google.members("1234567890", "987654")) == 30


async def test_partial_failure_is_reported_per_record(google: FakeGoogleAds, session: SafeSession) -> None:
    google.add_user_list("1234567890", "555", upload_key_type="CRM_ID")
    members = [member("ok", user_id=["u1"]), member("empty", user_id=["  "])]
    cfg = config(google, user_list_id="555", upload_key_type="CRM_ID")
    result = await DEST.send(session, SyncBatch("a", entered=members), CREDS, cfg)
    assert result.added == 1
    assert [(f.profile_id, f.reason, f.permanent) for f in result.failures] == [
        ("empty", "no_matchable_identifiers", True)
    ]
    wrong = await DEST.send(
        session, SyncBatch("a", entered=[member("e", "x@y.com")]), CREDS, config(google, user_list_id="555")
    )
    assert wrong.added == 0
    assert "INCOMPATIBLE_UPLOAD_KEY_TYPE" in wrong.failures[0].reason


async def test_throttling_is_retryable_with_delay(google: FakeGoogleAds, session: SafeSession) -> None:
    google.inject("throttle", retry_delay_s=17)
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(google))
    assert info.value.retry_after_s == 17.0


async def test_concurrent_modification_on_add_is_retryable(
    google: FakeGoogleAds, session: SafeSession
) -> None:
    google.inject("concurrent_modification", path=":addOperations")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(RetryableError):
        await DEST.send(session, batch, CREDS, config(google))
    result = await DEST.send(session, batch, CREDS, config(google))
    assert result.added == 1


async def test_auth_expiry_then_refresh_succeeds(google: FakeGoogleAds, session: SafeSession) -> None:
    google.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError):
        await DEST.send(session, batch, CREDS, config(google))
    fresh = await DEST.refresh_token(session, CREDS, config(google))
    assert fresh["access_token"] != CREDS["access_token"]
    assert (await DEST.send(session, batch, fresh, config(google))).added == 1
    assert google.refresh_calls == 1


async def test_hang_becomes_retryable_timeout(google: FakeGoogleAds, allow: AllowList) -> None:
    google.inject("hang")
    async with SafeSession(allow, timeout_s=0.3) as client:
        with pytest.raises(RetryableError, match="timeout"):
            await DEST.send(client, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(google))


async def test_test_connection_checks_the_list(google: FakeGoogleAds, session: SafeSession) -> None:
    await DEST.test_connection(session, CREDS, config(google))
    with pytest.raises(PermanentError, match="not found"):
        await DEST.test_connection(session, CREDS, config(google, user_list_id="1"))


def test_config_validation_reports_fields() -> None:
    errors = DEST.validate_config({"customer_id": "12-34", "upload_key_type": "EMAIL", "base_url": "ftp://x"})
    assert set(errors) == {"customer_id", "user_list_id", "upload_key_type", "base_url"}
