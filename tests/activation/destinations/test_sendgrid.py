"""SendGrid: contact bodies, request splitting, 400 attribution, and the client against the fake API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest

from activation.destinations import (
    Credentials,
    Member,
    PermanentError,
    RejectedError,
    RetryableError,
    SyncBatch,
)
from activation.destinations.sendgrid import SendGridDestination
from activation.destinations.sendgrid_payload import (
    classify_error,
    contact_of,
    refused_emails,
    search_ids,
    split_contacts,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.sendgrid import FakeSendGrid

DEST = SendGridDestination()
LIST = "8a6b5c4d-1234-4abc-9def-0123456789ab"
CREDS = Credentials({"api_key": FakeSendGrid.api_key})


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid() as fake:
        fake.add_list(LIST)
        yield fake


def config(fake: FakeSendGrid, **extra: object) -> dict[str, object]:
    return {"list_id": LIST, "base_url": fake.base_url, **extra}


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email], "phone": ["+447700900000"]}, {"first_name": "Ann"})


def test_contact_is_plain_lower_case_email_and_names() -> None:
    assert contact_of(member("p", " Ann@Example.COM ")) == {"email": "ann@example.com", "first_name": "Ann"}
    assert contact_of(Member("p", {"phone": ["+447700900000"]})) is None


def test_split_respects_count_and_size() -> None:
    contacts = [{"email": f"p{i}@example.com"} for i in range(10)]
    assert [len(p) for p in split_contacts(LIST, contacts, max_count=4)] == [4, 4, 2]
    parts = list(split_contacts(LIST, contacts, max_bytes=150))
    assert sum(map(len, parts)) == 10 and all(
        len(orjson.dumps({"list_ids": [LIST], "contacts": p})) <= 150 for p in parts
    )


def test_400_is_attributed_by_quoted_email_or_field_index() -> None:
    sent = [{"email": "a@b.com"}, {"email": "c@d.com"}]
    body = {"errors": [{"field": "email", "message": "email 'A@b.com' is not valid"},
                       {"field": "contacts[1].email", "message": "invalid"}]}  # fmt: skip
    assert set(refused_emails(body, sent)) == {"a@b.com", "c@d.com"}
    assert refused_emails({"errors": [{"message": "something else"}]}, sent) == {}


def test_search_and_error_reading() -> None:
    body = {"result": {"A@b.com": {"contact": {"id": "x1"}}, "c@d.com": {"error": "contact not found"}}}
    assert search_ids(body) == {"a@b.com": "x1"}
    now = time.time()
    throttled = classify_error(HttpResponse(429, {"x-ratelimit-reset": str(int(now) + 30)}, b"{}"), now)
    assert isinstance(throttled, RetryableError) and 29 <= (throttled.retry_after_s or 0) <= 30
    assert type(classify_error(HttpResponse(401, {}, b"{}"))) is PermanentError
    assert isinstance(classify_error(HttpResponse(400, {}, b"{}")), RejectedError)


async def test_add_then_remove(sendgrid: FakeSendGrid, session: SafeSession) -> None:
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(150)]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(sendgrid))
    assert (result.added, result.failures) == (150, ())
    assert sendgrid.list_emails(LIST) == {f"p{i}@example.com" for i in range(150)}
    gone = [member(f"p{i}", f"p{i}@example.com") for i in range(120)] + [member("x", "never@example.com")]
    result = await DEST.send(session, SyncBatch("a", exited=gone), CREDS, config(sendgrid))
    assert result.removed == 121
    assert sendgrid.list_emails(LIST) == {f"p{i}@example.com" for i in range(120, 150)}
    assert len(sendgrid.requests_to("search/emails")) == 2 and len(sendgrid.contacts) == 150
    nobody = await DEST.send(
        session, SyncBatch("a", exited=[member("y", "nobody@example.com")]), CREDS, config(sendgrid)
    )
    assert nobody.removed == 1  # search 404: nothing to remove


async def test_refused_addresses_fail_alone_and_the_rest_is_resent(
    sendgrid: FakeSendGrid, session: SafeSession
) -> None:
    sendgrid.refuse("bad@example.com")
    people = [member("ok", "ok@example.com"), member("bad", "bad@example.com"), Member("none", {})]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(sendgrid))
    assert result.added == 1
    assert {f.profile_id: f.permanent for f in result.failures} == {"bad": True, "none": True}
    assert "is not valid" in next(f.reason for f in result.failures if f.profile_id == "bad")
    assert len(sendgrid.requests_to("/v3/marketing/contacts")) == 2
    assert sendgrid.list_emails(LIST) == {"ok@example.com"}


async def test_throttle_waits_for_reset(sendgrid: FakeSendGrid, session: SafeSession) -> None:
    sendgrid.inject("throttle", retry_after_s=20)
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(sendgrid))
    assert 18 <= (info.value.retry_after_s or 0) <= 20
    assert (await DEST.send(session, batch, CREDS, config(sendgrid))).added == 1


async def test_rejected_key_and_missing_list_are_permanent(
    sendgrid: FakeSendGrid, session: SafeSession
) -> None:
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(PermanentError, match="401"):
        await DEST.send(session, batch, Credentials({"api_key": "wrong"}), config(sendgrid))
    other = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(PermanentError, match="404"):
        await DEST.send(session, batch, CREDS, config(sendgrid, list_id=other))
    with pytest.raises(PermanentError, match="not found"):
        await DEST.test_connection(session, CREDS, config(sendgrid, list_id=other))
    await DEST.test_connection(session, CREDS, config(sendgrid))


async def test_erase_deletes_the_contact(sendgrid: FakeSendGrid, session: SafeSession) -> None:
    await DEST.send(
        session,
        SyncBatch("a", entered=[member("p", "a@b.com"), member("q", "c@d.com")]),
        CREDS,
        config(sendgrid),
    )
    outcome = await DEST.erase(session, CREDS, config(sendgrid), {"email": ["A@b.com", "unknown@x.com"]})
    assert outcome.status == "erased" and set(sendgrid.contacts) == {"c@d.com"}
    assert (await DEST.erase(session, CREDS, config(sendgrid), {"user_id": ["u1"]})).status == "skipped"
