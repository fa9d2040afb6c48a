"""Braze: membership attribute objects, partial failures by index, and the client against the fake."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from activation.destinations import (
    Credentials,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
    SyncBatch,
)
from activation.destinations.braze import BrazeDestination
from activation.destinations.braze_payload import (
    attribute_name,
    attribute_object,
    classify_error,
    failed_indexes,
    identifier,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.braze import FakeBraze

DEST = BrazeDestination()
CREDS = Credentials({"api_key": FakeBraze.api_key})
ATTRIBUTE = "magpie_vip"


@pytest.fixture
async def braze() -> AsyncIterator[FakeBraze]:
    async with FakeBraze() as fake:
        yield fake


def config(fake: FakeBraze, **extra: object) -> dict[str, object]:
    return {"base_url": fake.base_url, **extra}


def member(n: int) -> Member:
    return Member(f"p{n}", {"user_id": [f"u{n}"], "email": [f"P{n}@Example.com"]})


def test_attribute_objects() -> None:
    assert attribute_name("magpie_", "vip") == ATTRIBUTE
    assert identifier(member(1), "external_id") == {"external_id": "u1"}
    assert identifier(member(1), "email") == {"email": "p1@example.com"}
    assert identifier(Member("x", {"email": ["a@b.com"]}), "external_id") is None
    assert attribute_object({"external_id": "u1"}, ATTRIBUTE, False, False) == {
        "external_id": "u1", ATTRIBUTE: False, "_update_existing_only": False
    }  # fmt: skip


def test_partial_failures_and_errors() -> None:
    body = {"message": "success", "errors": [{"type": "bad", "input_array": "attributes", "index": 2},
                                             {"type": "x", "input_array": "events", "index": 0}]}  # fmt: skip
    assert failed_indexes(body) == {2: "bad"}
    now = time.time()
    throttled = classify_error(HttpResponse(429, {"x-ratelimit-reset": str(int(now) + 9)}, b"{}"), now)
    assert isinstance(throttled, RetryableError) and 8 <= (throttled.retry_after_s or 0) <= 9
    assert type(classify_error(HttpResponse(401, {}, b'{"message":"Invalid API key"}'))) is PermanentError
    assert isinstance(classify_error(HttpResponse(400, {}, b"{}")), RejectedError)


async def test_enter_and_exit_in_requests_of_75(braze: FakeBraze, session: SafeSession) -> None:
    people = [member(n) for n in range(160)]
    result = await DEST.send(session, SyncBatch("vip", entered=people), CREDS, config(braze))
    assert (result.added, result.failures) == (160, ())
    assert len(braze.requests_to("/users/track")) == 3
    assert braze.holding(ATTRIBUTE) == {f"u{n}" for n in range(160)}
    result = await DEST.send(session, SyncBatch("vip", exited=people[:10]), CREDS, config(braze))
    assert result.removed == 10
    assert braze.holding(ATTRIBUTE) == {f"u{n}" for n in range(10, 160)}
    assert braze.users[("external_id", "u0")][ATTRIBUTE] is False


async def test_identify_by_email_and_update_existing_only(braze: FakeBraze, session: SafeSession) -> None:
    cfg = config(braze, identify_by="email", update_existing_only=True, attribute_prefix="seg_")
    await DEST.send(session, SyncBatch("vip", entered=[member(1)]), CREDS, cfg)
    assert braze.users == {}  # update-only: unknown users are not created
    braze.users[("email", "p1@example.com")] = {}
    await DEST.send(session, SyncBatch("vip", entered=[member(1)]), CREDS, cfg)
    assert braze.holding("seg_vip", "email") == {"p1@example.com"}


async def test_one_refused_object_fails_alone(braze: FakeBraze, session: SafeSession) -> None:
    braze.refuse("u2")
    people = [member(1), member(2), Member("none", {"email": ["a@b.com"]}), member(3)]
    result = await DEST.send(session, SyncBatch("vip", entered=people), CREDS, config(braze))
    assert result.added == 2
    assert {f.profile_id: f.permanent for f in result.failures} == {"p2": True, "none": True}
    assert braze.holding(ATTRIBUTE) == {"u1", "u3"}


async def test_throttle_key_and_connection(braze: FakeBraze, session: SafeSession) -> None:
    braze.inject("throttle", retry_after_s=12)
    batch = SyncBatch("vip", entered=[member(1)])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(braze))
    assert 10 <= (info.value.retry_after_s or 0) <= 12
    with pytest.raises(PermanentError, match="401"):
        await DEST.send(session, batch, Credentials({"api_key": "wrong"}), config(braze))
    await DEST.test_connection(session, CREDS, config(braze))
    assert braze.users == {}  # the probe changed nothing


async def test_erase_deletes_by_id_and_email(braze: FakeBraze, session: SafeSession) -> None:
    await DEST.send(session, SyncBatch("vip", entered=[member(n) for n in range(60)]), CREDS, config(braze))
    ids = {"user_id": [f"u{n}" for n in range(60)], "email": ["A@b.com"]}
    outcome = await DEST.erase(session, CREDS, config(braze), ids)
    assert outcome.status == "erased" and braze.users == {}
    assert len(braze.requests_to("/users/delete")) == 3  # 50 + 10 ids, 1 email
    assert (await DEST.erase(session, CREDS, config(braze), {"phone": ["+1"]})).status == "skipped"
