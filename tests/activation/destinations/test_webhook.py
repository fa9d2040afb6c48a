"""Signed webhooks: Standard Webhooks vector, body shape, and the client against a verifying receiver."""

from __future__ import annotations

import base64

import orjson
import pytest

from activation.destinations import Credentials, Member, PermanentError, RetryableError, SyncBatch
from activation.destinations.signing import InvalidSecret, decode_secret, sign
from activation.destinations.webhook import WebhookDestination, build_body, message_id
from activation.net import SafeSession
from tests.fakes.webhook import FakeWebhookReceiver

DEST = WebhookDestination()
# Published test vector of the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_standard_webhooks_vector() -> None:
    assert sign(decode_secret(VECTOR_SECRET), VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_bad_secrets_are_refused_without_echoing_them(secret: str) -> None:
    with pytest.raises(InvalidSecret) as info:
        decode_secret(secret)
    assert secret not in str(info.value)


def test_body_and_stable_message_id() -> None:
    body = build_body(
        "vip", [Member("p1", {"email": ["a@b.com"], "phone": []}, {"plan": "pro"})], [Member("p2")]
    )
    assert orjson.loads(body) == {
        "audience": "vip",
        "entered": [{"profile_id": "p1", "identifiers": {"email": ["a@b.com"]}, "traits": {"plan": "pro"}}],
        "exited": [{"profile_id": "p2", "identifiers": {}, "traits": {}}],
    }
    assert message_id("run-1", 0, body) == message_id("run-1", 0, b"other")
    assert message_id("run-1", 0, body) != message_id("run-1", 1, body)
    assert message_id("", 0, body) == message_id("", 0, body)


def config(fake: FakeWebhookReceiver, **extra: object) -> dict[str, object]:
    return {"url": fake.url, **extra}


def people(n: int, start: int = 0) -> list[Member]:
    return [Member(f"p{i}", {"email": [f"p{i}@example.com"]}) for i in range(start, start + n)]


async def test_delivery_is_verified_and_applied(receiver: FakeWebhookReceiver, session: SafeSession) -> None:
    creds = Credentials({"secret": receiver.secret})
    await DEST.send(
        session, SyncBatch("vip", entered=people(7), batch_id="r1"), creds, config(receiver, batch_size=3)
    )
    await DEST.send(session, SyncBatch("vip", exited=people(2), batch_id="r2"), creds, config(receiver))
    assert receiver.members["vip"] == {f"p{i}" for i in range(2, 7)}
    assert len(receiver.deliveries) == 4
    assert receiver.rejections == []


async def test_retried_batch_is_deduplicated_by_webhook_id(
    receiver: FakeWebhookReceiver, session: SafeSession
) -> None:
    creds = Credentials({"secret": receiver.secret})
    batch = SyncBatch("vip", entered=people(2), batch_id="r1")
    await DEST.send(session, batch, creds, config(receiver))
    await DEST.send(session, batch, creds, config(receiver))
    assert receiver.duplicates == 1


async def test_wrong_secret_is_rejected_permanently(
    receiver: FakeWebhookReceiver, session: SafeSession
) -> None:
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(PermanentError, match="401"):
        await DEST.send(
            session, SyncBatch("vip", entered=people(1)), Credentials({"secret": other}), config(receiver)
        )
    assert receiver.rejections == ["invalid signature"]


async def test_receiver_signals(receiver: FakeWebhookReceiver, session: SafeSession) -> None:
    creds = Credentials({"secret": receiver.secret})
    batch = SyncBatch("vip", entered=people(1))
    receiver.inject("throttle", retry_after_s=9)
    with pytest.raises(RetryableError) as info:
        await DEST.send(session, batch, creds, config(receiver))
    assert info.value.retry_after_s == 9.0
    receiver.inject("error500")
    with pytest.raises(RetryableError):
        await DEST.send(session, batch, creds, config(receiver))
    receiver.inject("gone")
    with pytest.raises(PermanentError, match="410"):
        await DEST.send(session, batch, creds, config(receiver))
    await DEST.test_connection(session, creds, config(receiver))


async def test_private_webhook_url_is_refused_without_allow_list(receiver: FakeWebhookReceiver) -> None:
    from activation.net import EMPTY

    async with SafeSession(EMPTY) as client:
        with pytest.raises(PermanentError, match="loopback"):
            await DEST.send(
                client,
                SyncBatch("vip", entered=people(1)),
                Credentials({"secret": receiver.secret}),
                config(receiver),
            )
    assert receiver.requests == []
