"""LinkedIn Matched Audiences: elements, per-element statuses, error classes, and the client against the
fake DMP segment API (including OAuth refresh)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import orjson
import pytest

from activation.destinations import (
    AuthExpiredError,
    Credentials,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
    SyncBatch,
)
from activation.destinations.linkedin import LinkedInDestination
from activation.destinations.linkedin_payload import Element, classify_error, element, element_failures
from activation.destinations.normalize import sha256_hex
from activation.net import HttpResponse, SafeSession
from tests.fakes.linkedin import FakeLinkedIn

DEST = LinkedInDestination()
SEGMENT = "5501"
CREDS = Credentials(
    {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "client_id": "client-id",
        "client_secret": "client-secret",
    }
)


@pytest.fixture
async def linkedin() -> AsyncIterator[FakeLinkedIn]:
    async with FakeLinkedIn() as fake:
        fake.add_segment(SEGMENT)
        yield fake


def config(fake: FakeLinkedIn, **extra: object) -> dict[str, object]:
    return {
        "segment_id": SEGMENT,
        "base_url": fake.base_url,
        "token_url": fake.base_url + "/oauth/v2/accessToken",
        **extra,
    }


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email], "advertising_id": ["gaid-1"]}, {"first_name": " Ann "})


def test_element_hashes_emails_without_whitespace() -> None:
    built = element(member("p", " Ann @Example.com"), "ADD", hashing="SHA256", send_google_aid=False)
    assert built is not None and built.body == {
        "action": "ADD",
        "userIds": [{"idType": "SHA256_EMAIL", "idValue": sha256_hex("ann@example.com")}],
        "firstName": "Ann",
    }
    sha512 = element(member("p", "a@b.com"), "REMOVE", hashing="SHA512", send_google_aid=True)
    assert sha512 is not None and sha512.body["userIds"] == [
        {"idType": "SHA512_EMAIL", "idValue": hashlib.sha512(b"a@b.com").hexdigest()},
        {"idType": "GOOGLE_AID", "idValue": "gaid-1"},
    ]
    assert element(Member("p", {"email": ["x"]}), "ADD", hashing="SHA256", send_google_aid=False) is None


def test_per_element_statuses_map_by_position() -> None:
    sent = [Element(Member(p), {}) for p in ("a", "b", "c", "d")]
    body = {"elements": [{"status": 201}, {"status": 400, "error": {"message": "bad"}}, {"status": 500}]}
    failures = element_failures(body, sent)
    assert [(f.profile_id, f.permanent) for f in failures] == [("b", True), ("c", False), ("d", False)]
    assert "bad" in failures[0].reason


def test_error_classes() -> None:
    def response(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
        return HttpResponse(status, headers or {}, orjson.dumps({"status": status, "message": "m"}))

    throttled = classify_error(response(429), records=True)
    assert isinstance(throttled, RetryableError) and throttled.retry_after_s == 60.0
    assert classify_error(response(429, {"retry-after": "5"}), records=True).retry_after_s == 5.0  # type: ignore[attr-defined]
    assert isinstance(classify_error(response(401), records=True), AuthExpiredError)
    assert isinstance(classify_error(response(400), records=True), RejectedError)
    assert type(classify_error(response(403), records=True)) is PermanentError
    assert isinstance(classify_error(response(503), records=True), RetryableError)


async def test_add_and_remove_with_restli_headers(linkedin: FakeLinkedIn, session: SafeSession) -> None:
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(5001)]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(linkedin))
    assert (result.added, result.failures) == (5001, ())
    assert len(linkedin.requests_to("/users")) == 2  # 5000 + 1
    assert linkedin.members(SEGMENT) == {sha256_hex(f"p{i}@example.com") for i in range(5001)}
    assert linkedin.members(SEGMENT, "GOOGLE_AID") == set()  # off by default

    result = await DEST.send(session, SyncBatch("a", exited=people[:3]), CREDS, config(linkedin))
    assert result.removed == 3
    assert len(linkedin.members(SEGMENT)) == 4998


async def test_one_bad_element_fails_alone(linkedin: FakeLinkedIn, session: SafeSession) -> None:
    linkedin.refuse(sha256_hex("bad@example.com"))
    batch = SyncBatch("a", entered=[member("ok", "ok@example.com"), member("bad", "bad@example.com")])
    result = await DEST.send(session, batch, CREDS, config(linkedin))
    assert result.added == 1
    assert [(f.profile_id, f.permanent) for f in result.failures] == [("bad", True)]
    assert linkedin.members(SEGMENT) == {sha256_hex("ok@example.com")}


async def test_throttle_then_success(linkedin: FakeLinkedIn, session: SafeSession) -> None:
    linkedin.inject("throttle")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(linkedin))
    assert info.value.retry_after_s == 60.0
    assert (await DEST.send(session, batch, CREDS, config(linkedin))).added == 1


async def test_expired_token_refreshes(linkedin: FakeLinkedIn, session: SafeSession) -> None:
    linkedin.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError, match="EXPIRED_ACCESS_TOKEN"):
        await DEST.send(session, batch, CREDS, config(linkedin))
    fresh = await DEST.refresh_token(session, CREDS, config(linkedin))
    assert fresh["access_token"] != "access-1" and linkedin.refresh_calls == 1
    assert (await DEST.send(session, batch, fresh, config(linkedin))).added == 1
    with pytest.raises(PermanentError, match="invalid_grant"):
        await DEST.refresh_token(session, CREDS.updated({"refresh_token": "revoked"}), config(linkedin))


async def test_sunset_version_and_unknown_segment_are_permanent(
    linkedin: FakeLinkedIn, session: SafeSession
) -> None:
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(PermanentError, match="426") as info:
        await DEST.send(session, batch, CREDS, config(linkedin, api_version="202401"))
    assert not isinstance(info.value, RejectedError)
    with pytest.raises(PermanentError, match="404"):
        await DEST.send(session, batch, CREDS, config(linkedin, segment_id="9"))


async def test_connection_requires_a_user_segment(linkedin: FakeLinkedIn, session: SafeSession) -> None:
    linkedin.add_segment("77", kind="COMPANY")
    await DEST.test_connection(session, CREDS, config(linkedin))
    with pytest.raises(PermanentError, match="COMPANY"):
        await DEST.test_connection(session, CREDS, config(linkedin, segment_id="77"))
