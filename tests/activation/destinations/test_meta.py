"""Meta Custom Audiences: row building, error classification by Graph code, client against the fake."""

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
from activation.destinations.meta import MetaDestination
from activation.destinations.meta_payload import build_payloads, classify_error, member_rows
from activation.destinations.normalize import sha256_hex
from activation.net import HttpResponse, SafeSession
from tests.fakes.meta import FakeMeta

DIGITS_ONLY = "4602031721d76ab01f4959d86fda7263b6fbbcb7457b7383de726a3b9137fc9d"
US = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
AUDIENCE = "23850000000001"
DEST = MetaDestination()


def test_rows_hash_each_field_by_meta_rules() -> None:
    m = Member(
        "p",
        {
            "email": ["John.Smith@Gmail.com", "second@example.com"],
            "phone": ["+1 (212) 565-0000"],
            "country": ["US"],
            "advertising_id": ["AB-CD"],
        },
        {"firstName": "Zoë!"},
    )
    main, extra = member_rows(m, extern_id=False)
    assert main["EMAIL"] == sha256_hex("john.smith@gmail.com")  # no Gmail dot stripping for Meta
    assert main["PHONE"] == DIGITS_ONLY
    assert main["COUNTRY"] == US
    assert main["FN"] == sha256_hex("zoë")
    assert main["MADID"] == "ab-cd"  # lower-cased, not hashed
    assert extra == {"EMAIL": sha256_hex("second@example.com")}


def test_payload_rows_align_with_schema_and_split_at_10000() -> None:
    rows = [{"EMAIL": "e" * 64}] * 10_001 + [{"PHONE": "p" * 64}]
    first, second = list(build_payloads(rows))
    assert first["schema"] == ["EMAIL"] and len(first["data"]) == 10_000  # type: ignore[arg-type]
    assert second == {"schema": ["EMAIL", "PHONE"], "data": [["e" * 64, ""], ["", "p" * 64]]}


def graph(status: int, code: int, headers: dict[str, str] | None = None, **extra: object) -> HttpResponse:
    return HttpResponse(
        status, headers or {}, orjson.dumps({"error": {"message": "m", "code": code, **extra}})
    )


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80003])
def test_throttle_codes_are_retryable_even_as_400(code: int) -> None:
    usage = orjson.dumps({"1": [{"estimated_time_to_regain_access": 3}]}).decode()
    err = classify_error(graph(400, code, {"x-business-use-case-usage": usage}))
    assert isinstance(err, RetryableError)
    assert err.retry_after_s == 180.0


def test_other_codes() -> None:
    assert isinstance(classify_error(graph(500, 2)), RetryableError)
    assert isinstance(classify_error(graph(400, 190, error_subcode=463)), AuthExpiredError)
    assert isinstance(classify_error(graph(400, 100, error_subcode=33)), PermanentError)


def config(fake: FakeMeta, **extra: object) -> dict[str, object]:
    return {"audience_id": AUDIENCE, "base_url": fake.base_url, **extra}


CREDS = Credentials({"access_token": "access-1", "app_secret": "shh"})


def member(pid: str, email: str) -> Member:
    return Member(pid, {"email": [email]})


async def test_add_and_remove_with_appsecret_proof(meta: FakeMeta, session: SafeSession) -> None:
    meta.app_secret = "shh"
    people = [member(f"p{i}", f"P{i}@Example.com") for i in range(4)]
    result = await DEST.send(session, SyncBatch("a", entered=people), CREDS, config(meta))
    assert result.added == 4 and result.unattributed_invalid == 0
    await DEST.send(session, SyncBatch("a", exited=people[:1]), CREDS, config(meta))
    assert meta.members(AUDIENCE) == {sha256_hex(f"p{i}@example.com") for i in range(1, 4)}
    assert [r.method for r in meta.requests_to("/users")] == ["POST", "DELETE"]


async def test_wrong_appsecret_proof_is_rejected(meta: FakeMeta, session: SafeSession) -> None:
    meta.app_secret = "different"
    with pytest.raises(PermanentError, match="appsecret_proof"):
        await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(meta))


async def test_members_without_identifiers_fail_individually(meta: FakeMeta, session: SafeSession) -> None:
    batch = SyncBatch("a", entered=[member("ok", "a@b.com"), Member("nobody", {"email": ["not-an-email"]})])
    result = await DEST.send(session, batch, CREDS, config(meta))
    assert result.added == 1
    assert [f.profile_id for f in result.failures] == ["nobody"]


async def test_throttle_as_400_becomes_retryable(meta: FakeMeta, session: SafeSession) -> None:
    meta.inject("throttle", code=17, regain_minutes=5)
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(meta))
    assert info.value.retry_after_s == 300.0


async def test_expired_token_then_new_token_succeeds(meta: FakeMeta, session: SafeSession) -> None:
    meta.inject("auth_expired")
    batch = SyncBatch("a", entered=[member("p", "a@b.com")])
    with pytest.raises(AuthExpiredError):
        await DEST.send(session, batch, CREDS, config(meta))
    fresh = CREDS.updated({"access_token": meta.issue_token()})
    assert (await DEST.send(session, batch, fresh, config(meta))).added == 1


async def test_fake_counts_unhashed_rows_as_invalid(meta: FakeMeta, session: SafeSession) -> None:
    body = orjson.dumps(
        {
            "access_token": "access-1",
            "payload": {"schema": ["EMAIL"], "data": [["a@b.com"], [sha256_hex("c@d.com")]]},
        }
    )
    response = await session.request(
        "POST",
        f"{meta.base_url}/v25.0/{AUDIENCE}/users",
        body=body,
        headers={"content-type": "application/json"},
    )
    assert response.json()["num_invalid_entries"] == 1  # type: ignore[index]
    assert meta.members(AUDIENCE) == {sha256_hex("c@d.com")}


async def test_unknown_audience_is_permanent(meta: FakeMeta, session: SafeSession) -> None:
    with pytest.raises(PermanentError, match="100/33"):
        await DEST.send(
            session, SyncBatch("a", entered=[member("p", "a@b.com")]), CREDS, config(meta, audience_id="9")
        )


async def test_test_connection(meta: FakeMeta, session: SafeSession) -> None:
    await DEST.test_connection(session, Credentials({"access_token": "access-1"}), config(meta))
