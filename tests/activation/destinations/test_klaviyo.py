"""Klaviyo: import bodies, pointer attribution, filters, and the client against the fake JSON:API."""

from __future__ import annotations

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
from activation.destinations.klaviyo import KlaviyoDestination
from activation.destinations.klaviyo_payload import (
    classify_error,
    filter_expression,
    import_body,
    profile_of,
    refused_indexes,
    split_profiles,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.klaviyo import FakeKlaviyo

DEST = KlaviyoDestination()
LIST = "VRgFBd"
CREDS = Credentials({"api_key": FakeKlaviyo.api_key})


@pytest.fixture
async def klaviyo() -> AsyncIterator[FakeKlaviyo]:
    async with FakeKlaviyo() as fake:
        fake.add_list(LIST)
        yield fake


def config(fake: FakeKlaviyo, **extra: object) -> dict[str, object]:
    return {"list_id": LIST, "base_url": fake.base_url, **extra}


def member(pid: str, email: str | None = None, phone: str | None = None) -> Member:
    ids = {"email": [email] if email else [], "phone": [phone] if phone else [], "user_id": [f"u-{pid}"]}
    return Member(pid, ids, {"first_name": "Ann"})


def test_profiles_and_bodies() -> None:
    assert profile_of(member("p", " A@B.com ", "0044 20 7946 0000"), external_id=False) == {
        "email": "a@b.com", "phone_number": "+442079460000", "first_name": "Ann"
    }  # fmt: skip
    assert profile_of(member("p", "a@b.com"), external_id=True)["external_id"] == "u-p"  # type: ignore[index]
    assert profile_of(member("p"), external_id=True) is None
    body = import_body(LIST, [{"email": "a@b.com"}])
    assert body["data"]["relationships"] == {"lists": {"data": [{"type": "list", "id": LIST}]}}  # type: ignore[index]
    parts = list(split_profiles(LIST, [{"email": f"p{i}@x.com"} for i in range(5)], max_count=2))
    assert [len(p) for p in parts] == [2, 2, 1]


def test_pointers_filters_and_errors() -> None:
    body = {"errors": [{"code": "invalid", "detail": "bad", "source": {"pointer": "/data/attributes/profiles/data/3/attributes/email"}},
                       {"code": "invalid", "detail": "x", "source": {"pointer": "/data/type"}}]}  # fmt: skip
    assert refused_indexes(body, 5) == {3: "klaviyo invalid: bad"}
    assert filter_expression("email", ["a@b.com", "c@d.com"]) == 'any(email,["a@b.com","c@d.com"])'
    assert filter_expression("email", ['a"b@c.com']) is None
    throttled = classify_error(
        HttpResponse(429, {"retry-after": "7"}, orjson.dumps({"errors": [{"code": "throttled"}]}))
    )
    assert isinstance(throttled, RetryableError) and throttled.retry_after_s == 7.0
    assert type(classify_error(HttpResponse(401, {}, b"{}"))) is PermanentError
    assert isinstance(classify_error(HttpResponse(400, {}, b"{}")), RejectedError)


async def test_add_then_remove(klaviyo: FakeKlaviyo, session: SafeSession) -> None:
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(150)] + [
        member("ph", phone="+447700900001")
    ]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(klaviyo))
    assert (result.added, result.failures) == (151, ())
    assert len(klaviyo.lists[LIST]) == 151 and "p0@example.com" in klaviyo.list_emails(LIST)
    gone = [member(f"p{i}", f"p{i}@example.com") for i in range(120)]
    gone += [member("ph", phone="+44 7700 900001"), member("never", "never@example.com"), member("none")]
    result = await DEST.send(session, SyncBatch("a", exited=gone), CREDS, config(klaviyo))
    assert result.removed == 122 and [f.profile_id for f in result.failures] == ["none"]
    assert klaviyo.list_emails(LIST) == {f"p{i}@example.com" for i in range(120, 150)}
    assert len(klaviyo.requests_to("/api/profiles")) == 3  # 100 + 20 emails, 1 phone
    assert len(klaviyo.profiles) == 151  # leaving a list deletes no profile


async def test_lookup_follows_pages_and_removes_every_profile_of_an_address(
    klaviyo: FakeKlaviyo, session: SafeSession
) -> None:
    for n in range(100):  # two profiles per address (Klaviyo keeps phone-first and email-first apart)
        for copy in range(2):
            klaviyo.profiles[f"id{n}-{copy}"] = {"email": f"d{n}@example.com"}
            klaviyo.lists[LIST].add(f"id{n}-{copy}")
    klaviyo.lists[LIST].add("other")
    gone = [member(f"d{n}", f"d{n}@example.com") for n in range(100)]
    result = await DEST.send(session, SyncBatch("a", exited=gone), CREDS, config(klaviyo))
    assert result.removed == 100 and klaviyo.lists[LIST] == {"other"}
    assert len(klaviyo.requests_to("/api/profiles")) == 2  # the second page came from links.next


async def test_refused_profiles_fail_alone(klaviyo: FakeKlaviyo, session: SafeSession) -> None:
    klaviyo.refuse("bad@example.com")
    people = [member("ok", "ok@example.com"), member("bad", "bad@example.com"), member("none")]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(klaviyo))
    assert result.added == 1
    assert {f.profile_id: f.permanent for f in result.failures} == {"bad": True, "none": True}
    assert "Invalid email" in next(f.reason for f in result.failures if f.profile_id == "bad")
    assert len(klaviyo.requests_to("profile-bulk-import-jobs")) == 2
    assert klaviyo.list_emails(LIST) == {"ok@example.com"}


async def test_throttle_key_revision_and_list(klaviyo: FakeKlaviyo, session: SafeSession) -> None:
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    klaviyo.inject("throttle", retry_after_s=4)
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(klaviyo))
    assert info.value.retry_after_s == 4.0
    with pytest.raises(PermanentError, match="401"):
        await DEST.send(session, batch, Credentials({"api_key": "pk_wrong"}), config(klaviyo))
    with pytest.raises(PermanentError, match="404"):
        await DEST.test_connection(session, CREDS, config(klaviyo, list_id="Nope00"))
    await DEST.test_connection(session, CREDS, config(klaviyo))
    assert all(r.headers.get("revision") == "2025-01-15" for r in klaviyo.requests)


async def test_erase_starts_deletion_jobs(klaviyo: FakeKlaviyo, session: SafeSession) -> None:
    await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(klaviyo))
    outcome = await DEST.erase(
        session, CREDS, config(klaviyo), {"email": ["A@b.com"], "phone": ["+447700900002"]}
    )
    assert outcome.status == "erased" and klaviyo.profiles == {}
    assert klaviyo.deletion_requests == [{"email": "a@b.com"}, {"phone_number": "+447700900002"}]
