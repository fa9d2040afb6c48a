"""Customer.io: identifiers, v2 batch entries and 207 reading, and the client against the fake Track API."""

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
    SyncBatch,
)
from activation.destinations.customerio import CustomerIoDestination, read_config
from activation.destinations.customerio_payload import (
    MAX_BATCH_BYTES,
    Keyed,
    batch_chunks,
    batch_errors,
    classify_error,
    identify_entry,
    member_key,
)
from activation.net import HttpResponse, SafeSession
from tests.fakes.customerio import FakeCustomerIo

DEST = CustomerIoDestination()
CREDS = Credentials({"site_id": FakeCustomerIo.site_id, "api_key": FakeCustomerIo.api_key})
SEGMENT = "7"


@pytest.fixture
async def cio() -> AsyncIterator[FakeCustomerIo]:
    async with FakeCustomerIo() as fake:
        fake.add_segment(SEGMENT)
        yield fake


def member(n: int, email: str | None = None) -> Member:
    return Member(
        f"p{n}", {"user_id": [f"u{n}"], "email": [email or f"P{n}@Example.com"]}, {"firstName": "Ann"}
    )


def config(fake: FakeCustomerIo, **extra: object) -> dict[str, object]:
    return {"segment_id": SEGMENT, "base_url": fake.base_url, **extra}


def test_member_key_per_id_type() -> None:
    m = Member("p", {"user_id": [" u1 "], "email": [" Ann@X.com "], "cio_id": ["a1b2"]})
    assert [member_key(m, t) for t in ("id", "email", "cio_id")] == ["u1", "ann@x.com", "a1b2"]
    assert member_key(Member("p", {"email": ["nope"]}), "email") is None


def test_identify_entry_and_region_urls() -> None:
    entry = identify_entry(Keyed(member(1), "u1"), "id")
    assert entry == {
        "type": "person",
        "identifiers": {"id": "u1"},
        "action": "identify",
        "attributes": {"email": "p1@example.com", "first_name": "Ann"},
    }
    by_email = identify_entry(Keyed(member(1), "p1@example.com"), "email")
    assert by_email["attributes"] == {"first_name": "Ann"}  # the identifier already is the email
    assert read_config({"segment_id": "1", "region": "eu"})[0].base_url == "https://track-eu.customer.io"
    assert read_config({"segment_id": "1"})[0].base_url == "https://track.customer.io"
    assert "region" in read_config({"segment_id": "1", "region": "ap"})[1]


def test_batches_stay_under_500_kb() -> None:
    entries: list[dict[str, object]] = [{"type": "person", "attributes": {"x": "y" * 20_000}}] * 60
    chunks = batch_chunks(entries)  # type: ignore[arg-type]
    assert chunks[0] == (0, 24) and chunks[-1][1] == 60
    assert all(len(orjson.dumps({"batch": entries[a:b]})) <= MAX_BATCH_BYTES for a, b in chunks)


def test_207_errors_map_by_batch_index() -> None:
    body = {"errors": [{"batch_index": 1, "reason": "invalid", "field": "email", "message": "bad"}, {"x": 1}]}
    assert batch_errors(body, 2) == {1: "customerio: invalid email bad"}
    assert batch_errors({"errors": [{"batch_index": 5}]}, 2) == {}


def test_error_classification() -> None:
    def response(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
        return HttpResponse(status, headers or {}, orjson.dumps({"meta": {"error": "m"}}))

    throttled = classify_error(response(429, {"retry-after": "3"}), records=True)
    assert isinstance(throttled, RetryableError) and throttled.retry_after_s == 3.0
    assert isinstance(classify_error(response(401), records=True), AuthExpiredError)
    assert isinstance(classify_error(response(400), records=True), RejectedError)
    assert type(classify_error(response(400), records=False)) is PermanentError
    assert isinstance(classify_error(response(503), records=True), RetryableError)


async def test_add_identifies_then_remove(cio: FakeCustomerIo, session: SafeSession) -> None:
    people = [member(n) for n in range(1, 1202)]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(cio))
    assert (result.added, result.failures) == (1201, ())
    assert len(cio.requests_to("/add_customers")) == 2  # 1000 + 201: the documented per-call limit
    assert all(r.query == {"id_type": "id"} for r in cio.requests_to("/add_customers"))
    assert cio.segment_emails(SEGMENT) == {f"p{n}@example.com" for n in range(1, 1202)}

    result = await DEST.send(session, SyncBatch("a", exited=people[:2]), CREDS, config(cio))
    assert result.removed == 2
    assert cio.segment_emails(SEGMENT) == {f"p{n}@example.com" for n in range(3, 1202)}
    assert len(cio.people) == 1201  # leaving the segment does not delete the person


async def test_email_id_type(cio: FakeCustomerIo, session: SafeSession) -> None:
    cfg = config(cio, id_type="email")
    result = await DEST.send(session, SyncBatch("a", entered=[member(1), member(2)]), CREDS, cfg)
    assert result.added == 2 and cio.segment_emails(SEGMENT) == {"p1@example.com", "p2@example.com"}
    assert cio.requests_to("/add_customers")[0].query == {"id_type": "email"}


async def test_refused_person_is_a_record_failure(cio: FakeCustomerIo, session: SafeSession) -> None:
    cio.refuse("p2@example.com")
    batch = SyncBatch("a", entered=[member(1), member(2), Member("nobody", {"email": ["x@y.com"]})])
    result = await DEST.send(session, batch, CREDS, config(cio))
    reasons = {f.profile_id: f.reason for f in result.failures}
    assert result.added == 1 and set(reasons) == {"p2", "nobody"}
    assert "email" in reasons["p2"] and reasons["nobody"] == "no_id"
    assert cio.segment_emails(SEGMENT) == {"p1@example.com"}
    ids = orjson.loads(cio.requests_to("/add_customers")[0].body)["ids"]
    assert ids == ["u1"]  # the refused person is not added


async def test_throttle_is_retryable_with_retry_after(cio: FakeCustomerIo, session: SafeSession) -> None:
    cio.inject("throttle", retry_after_s=4, path="/add_customers")
    batch = SyncBatch("a", entered=[member(1)])
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, CREDS, config(cio))
    assert info.value.retry_after_s == 4.0
    assert (await DEST.send(session, batch, CREDS, config(cio))).added == 1


async def test_bad_keys_are_auth_errors_and_cannot_refresh(cio: FakeCustomerIo, session: SafeSession) -> None:
    cio.inject("auth_expired")
    with pytest.raises(AuthExpiredError, match="401"):
        await DEST.send(session, SyncBatch("a", entered=[member(1)]), CREDS, config(cio))
    assert not hasattr(DEST, "refresh_token")


async def test_data_driven_segment_is_refused(cio: FakeCustomerIo, session: SafeSession) -> None:
    cio.add_segment("9", kind="data_driven")
    with pytest.raises(PermanentError, match="manual segments") as info:
        await DEST.send(session, SyncBatch("a", entered=[member(1)]), CREDS, config(cio, segment_id="9"))
    assert not isinstance(info.value, RejectedError)  # not one record's fault: no splitting


async def test_connection_checks_the_region(cio: FakeCustomerIo, session: SafeSession) -> None:
    await DEST.test_connection(session, CREDS, config(cio))
    with pytest.raises(PermanentError, match="region 'us'"):
        await DEST.test_connection(session, CREDS, config(cio, region="eu"))
    with pytest.raises(AuthExpiredError):
        await DEST.test_connection(session, CREDS.updated({"api_key": "wrong"}), config(cio))


async def test_erase_deletes_the_person_everywhere(cio: FakeCustomerIo, session: SafeSession) -> None:
    await DEST.send(session, SyncBatch("a", entered=[member(1), member(2)]), CREDS, config(cio))
    erased = await DEST.erase(session, CREDS, config(cio), {"email": [" P1@Example.com "], "user_id": ["u1"]})
    assert erased.status == "erased"
    assert [r.method for r in cio.requests_to("/api/v1/customers/")] == ["DELETE", "DELETE"]
    assert cio.find("id", "u1") is None and cio.segment_emails(SEGMENT) == {"p2@example.com"}
    again = await DEST.erase(session, CREDS, config(cio), {"user_id": ["u1"]})  # unknown now: fine
    assert again.status == "erased"
    assert (await DEST.erase(session, CREDS, config(cio), {"phone": ["+1"]})).status == "skipped"
