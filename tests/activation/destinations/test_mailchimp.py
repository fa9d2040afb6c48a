"""Mailchimp: subscriber hash, request shapes, and the client against the fake API."""

from __future__ import annotations

import pytest

from activation.destinations import AuthExpiredError, Credentials, Member, RetryableError, SyncBatch
from activation.destinations.mailchimp import MailchimpDestination, data_center_of, subscriber_hash
from activation.net import SafeSession
from tests.fakes.mailchimp import FakeMailchimp

DEST = MailchimpDestination()
LIST = "a1b2c3"
CREDS = Credentials({"api_key": FakeMailchimp.api_key})


def test_subscriber_hash_is_md5_of_lowercase_trimmed_email() -> None:
    assert subscriber_hash(" Ann@Example.com ") == "257c57037d384ae37ea27a07e8a01665"


def test_data_center_comes_from_the_key_suffix() -> None:
    assert data_center_of("abc123-us6") == "us6"
    assert data_center_of("abc123") is None
    assert data_center_of("abc-evil.com/x") is None


def config(fake: FakeMailchimp, **extra: object) -> dict[str, object]:
    return {"list_id": LIST, "base_url": fake.base_url + "/3.0", **extra}


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email]}, {"firstName": "Ann"})


async def test_enter_and_exit_manage_the_audience_tag(mailchimp: FakeMailchimp, session: SafeSession) -> None:
    people = [member(f"p{i}", f"Person{i}@Example.com") for i in range(6)]
    result = await DEST.send(session, SyncBatch("vip", entered=people), CREDS, config(mailchimp))
    assert (result.added, result.failures) == (6, ())
    assert mailchimp.tagged(LIST, "vip") == {f"person{i}@example.com" for i in range(6)}
    assert mailchimp.status_of(LIST, "person0@example.com") == "subscribed"

    result = await DEST.send(session, SyncBatch("vip", exited=people[:2]), CREDS, config(mailchimp))
    assert result.removed == 2
    assert mailchimp.tagged(LIST, "vip") == {f"person{i}@example.com" for i in range(2, 6)}
    assert mailchimp.status_of(LIST, "person0@example.com") == "subscribed"  # tag removed, not unsubscribed


async def test_existing_unsubscribed_member_is_not_resubscribed(
    mailchimp: FakeMailchimp, session: SafeSession
) -> None:
    mailchimp.add_member(LIST, "gone@example.com", "unsubscribed")
    await DEST.send(
        session, SyncBatch("vip", entered=[member("p", "gone@example.com")]), CREDS, config(mailchimp)
    )
    assert mailchimp.status_of(LIST, "gone@example.com") == "unsubscribed"


async def test_unsubscribe_on_exit(mailchimp: FakeMailchimp, session: SafeSession) -> None:
    cfg = config(mailchimp, on_exit="unsubscribe")
    await DEST.send(session, SyncBatch("vip", entered=[member("p", "a@b.com")]), CREDS, cfg)
    await DEST.send(
        session, SyncBatch("vip", exited=[member("p", "a@b.com"), member("q", "never@b.com")]), CREDS, cfg
    )
    assert mailchimp.status_of(LIST, "a@b.com") == "unsubscribed"


async def test_per_record_failures(mailchimp: FakeMailchimp, session: SafeSession) -> None:
    await DEST.send(
        session, SyncBatch("vip", entered=[member("d", "deleted@b.com")]), CREDS, config(mailchimp)
    )
    await DEST.delete_member(session, member("d", "deleted@b.com"), CREDS, config(mailchimp))
    batch = SyncBatch(
        "vip", entered=[member("ok", "ok@b.com"), member("d", "deleted@b.com"), Member("x", {})]
    )
    result = await DEST.send(session, batch, CREDS, config(mailchimp))
    assert result.added == 1
    reasons = {f.profile_id: f.reason for f in result.failures}
    assert "Forgotten Email Not Subscribed" in reasons["d"]
    assert reasons["x"] == "no_valid_email"


async def test_concurrency_stays_within_ten_connections(session: SafeSession) -> None:
    async with FakeMailchimp(latency_s=0.02) as fake:
        fake.add_list(LIST)
        people = [member(f"p{i}", f"p{i}@example.com") for i in range(40)]
        result = await DEST.send(
            session, SyncBatch("vip", entered=people), CREDS, config(fake, concurrency=10)
        )
    assert result.added == 40
    assert 2 <= fake.max_in_flight <= 10


async def test_too_many_connections_is_a_429(session: SafeSession) -> None:
    async with FakeMailchimp(latency_s=0.05, max_connections=3) as fake:
        fake.add_list(LIST)
        people = [member(f"p{i}", f"p{i}@example.com") for i in range(10)]
        with pytest.raises(RetryableError, match="429"):
            await DEST.send(session, SyncBatch("vip", entered=people), CREDS, config(fake, concurrency=5))


async def test_throttle_and_server_error_are_retryable(
    mailchimp: FakeMailchimp, session: SafeSession
) -> None:
    batch = SyncBatch("vip", entered=[member("p", "a@b.com")])
    mailchimp.inject("throttle")
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(mailchimp))
    assert info.value.retry_after_s is None  # Mailchimp sends no Retry-After: the engine backs off
    mailchimp.inject("error500")
    with pytest.raises(RetryableError):
        await DEST.send(session, batch, CREDS, config(mailchimp))
    assert (await DEST.send(session, batch, CREDS, config(mailchimp))).added == 1


async def test_bad_api_key_is_auth_error(mailchimp: FakeMailchimp, session: SafeSession) -> None:
    with pytest.raises(AuthExpiredError, match="API Key Invalid"):
        await DEST.send(
            session,
            SyncBatch("vip", entered=[member("p", "a@b.com")]),
            Credentials({"api_key": "wrong-us6"}),
            config(mailchimp),
        )


async def test_test_connection_and_deletion(mailchimp: FakeMailchimp, session: SafeSession) -> None:
    await DEST.test_connection(session, CREDS, config(mailchimp))
    await DEST.send(session, SyncBatch("vip", entered=[member("p", "a@b.com")]), CREDS, config(mailchimp))
    await DEST.delete_member(session, member("p", "A@b.com"), CREDS, config(mailchimp))
    assert mailchimp.status_of(LIST, "a@b.com") is None
