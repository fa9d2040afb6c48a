"""TikTok Custom Audiences: normalisation and hashing, positional bodies, envelope codes, and the client
against the fake Marketing API."""

from __future__ import annotations

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
    SupportsTokenRefresh,
    SyncBatch,
)
from activation.destinations.normalize import sha256_hex
from activation.destinations.tiktok import TikTokDestination
from activation.destinations.tiktok_payload import (
    classify,
    mapping_bodies,
    member_rows,
    normalize_tiktok_email,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.tiktok import FakeTikTok

DEST = TikTokDestination()
CREDS = Credentials({"access_token": "access-1"})
ADVERTISER, AUDIENCE = "7001234567890", "123456"


@pytest.fixture
async def tiktok() -> AsyncIterator[FakeTikTok]:
    async with FakeTikTok() as fake:
        fake.add_audience(ADVERTISER, AUDIENCE)
        yield fake


def config(fake: FakeTikTok, **extra: object) -> dict[str, object]:
    return {"advertiser_id": ADVERTISER, "audience_id": AUDIENCE, "base_url": fake.base_url, **extra}


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email]})


def test_email_rule_drops_plus_suffix_but_keeps_dots() -> None:
    assert normalize_tiktok_email(" Ann.Lee+ads@Example.COM ") == "ann.lee@example.com"
    assert normalize_tiktok_email("+x@example.com") is None
    assert normalize_tiktok_email("nope") is None


def test_rows_hash_every_identifier() -> None:
    m = Member(
        "p",
        {"email": ["A@b.com", "second@b.com"], "phone": ["+1 (212) 565-0000"], "advertising_id": [" AB-CD "]},
    )
    main, extra = member_rows(m, "AAID_SHA256")
    assert main == {
        "EMAIL_SHA256": sha256_hex("a@b.com"),
        "PHONE_SHA256": sha256_hex("+12125650000"),
        "AAID_SHA256": sha256_hex("ab-cd"),
    }
    assert extra == {"EMAIL_SHA256": sha256_hex("second@b.com")}
    assert member_rows(Member("p", {"email": ["bad"]}), "IDFA_SHA256") == []


def test_bodies_are_positional_and_split_at_1000() -> None:
    rows = [{"EMAIL_SHA256": "e" * 64}] * 1000 + [{"PHONE_SHA256": "p" * 64}, {"EMAIL_SHA256": "f" * 64}]
    first, second = list(mapping_bodies(rows, "1", "9", "delete"))
    assert first["id_schema"] == ["EMAIL_SHA256"] and len(first["batch_data"]) == 1000  # type: ignore[arg-type]
    assert second == {
        "advertiser_ids": ["1"],
        "action": "delete",
        "id_schema": ["EMAIL_SHA256", "PHONE_SHA256"],
        "batch_data": [
            [{}, {"id": "p" * 64, "audience_ids": ["9"]}],
            [{"id": "f" * 64, "audience_ids": ["9"]}, {}],
        ],
    }


def envelope(code: int, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, orjson.dumps({"code": code, "message": "m", "request_id": "r"}))


@pytest.mark.parametrize(("code", "wait_s"), [(40100, 10.0), (40016, 10.0), (40133, 1.0)])
def test_rate_limit_codes_arrive_as_http_200_and_are_retryable(code: int, wait_s: float) -> None:
    error = classify(envelope(code), records=True)
    assert isinstance(error, RetryableError) and error.retry_after_s == wait_s


def test_other_codes() -> None:
    assert classify(envelope(0), records=True) is None
    assert classify(envelope(20001), records=True) is None
    assert isinstance(classify(envelope(40105), records=True), AuthExpiredError)
    assert isinstance(classify(envelope(40002), records=True), RejectedError)
    assert type(classify(envelope(40002), records=False)) is PermanentError
    assert type(classify(envelope(40001), records=True)) is PermanentError
    assert isinstance(classify(envelope(50000), records=True), RetryableError)
    assert isinstance(classify(HttpResponse(404, {}, b"404 page not found"), records=True), PermanentError)


async def test_add_and_delete(tiktok: FakeTikTok, session: SafeSession) -> None:
    people = [member(f"p{i}", f"P{i}+promo@Example.com") for i in range(1001)]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(tiktok))
    assert (result.added, result.failures) == (1001, ())
    assert len(tiktok.requests_to("/segment/mapping/")) == 2
    assert tiktok.members(ADVERTISER, AUDIENCE) == {sha256_hex(f"p{i}@example.com") for i in range(1001)}
    request = tiktok.requests_to("/segment/mapping/")[0]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["access-token"] == "access-1" and "authorization" not in headers

    await DEST.send(session, SyncBatch("a", exited=people[:1]), CREDS, config(tiktok))
    assert orjson.loads(tiktok.requests_to("/segment/mapping/")[-1].body)["action"] == "delete"
    assert sha256_hex("p0@example.com") not in tiktok.members(ADVERTISER, AUDIENCE)


async def test_one_refused_user_fails_the_call_as_rejected(tiktok: FakeTikTok, session: SafeSession) -> None:
    tiktok.refuse(sha256_hex("bad@example.com"))
    batch = SyncBatch("a", entered=[member("ok", "ok@example.com"), member("bad", "bad@example.com")])
    with pytest.raises(RejectedError, match="40002"):
        await DEST.send(session, batch, CREDS, config(tiktok))
    assert tiktok.members(ADVERTISER, AUDIENCE) == set()  # all or nothing
    alone = await DEST.send(session, SyncBatch("a", entered=batch.entered[:1]), CREDS, config(tiktok))
    assert alone.added == 1


async def test_members_without_ids_fail_individually(tiktok: FakeTikTok, session: SafeSession) -> None:
    batch = SyncBatch("a", entered=[member("ok", "a@b.com"), Member("none", {"email": ["x"]})])
    result = await DEST.send(session, batch, CREDS, config(tiktok))
    assert result.added == 1 and [f.profile_id for f in result.failures] == ["none"]


async def test_throttle_code_is_retryable(tiktok: FakeTikTok, session: SafeSession) -> None:
    tiktok.inject("throttle", code=40133)
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(tiktok))
    assert info.value.retry_after_s == 1.0
    assert (await DEST.send(session, batch, CREDS, config(tiktok))).added == 1


async def test_revoked_token_needs_a_new_one(tiktok: FakeTikTok, session: SafeSession) -> None:
    tiktok.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError, match="40105"):
        await DEST.send(session, batch, CREDS, config(tiktok))
    assert not isinstance(DEST, SupportsTokenRefresh)  # long-term tokens have no refresh grant
    fresh = CREDS.updated({"access_token": tiktok.issue_token()})
    assert (await DEST.send(session, batch, fresh, config(tiktok))).added == 1


async def test_unknown_audience_and_connection_test(tiktok: FakeTikTok, session: SafeSession) -> None:
    with pytest.raises(PermanentError, match="40007"):
        await DEST.send(
            session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(tiktok, audience_id="9")
        )
    await DEST.test_connection(session, CREDS, config(tiktok))
    with pytest.raises(PermanentError, match="not found"):
        await DEST.test_connection(session, CREDS, config(tiktok, audience_id="9"))
