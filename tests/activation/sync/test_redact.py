"""Redaction catches a secret in the forms it comes back in, and error responses are masked before a
destination quotes (and truncates) them."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Mapping

import pytest

from activation.net import HttpResponse
from activation.sync.redact import MAX_ERROR_CHARS, RedactingClient, Redactor, redact

SECRET = "sk_live_9f8e7d6c5b4a3f2e1d0c"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORMS = {
    "plain": SECRET,
    "base64": b64(SECRET),
    "base64 urlsafe": base64.urlsafe_b64encode(("?" + SECRET).encode()).decode(),
    "basic user:secret": b64(f"magpie:{SECRET}"),
    "basic other user": b64(f"an-admin@example.com:{SECRET}"),
    "base64 inside json": b64(json.dumps({"token": SECRET})),
    "base64 cut short": b64(f"magpie:{SECRET}")[:22],
    "urlencoded": urllib.parse.quote(SECRET, safe=""),
    "form-encoded": urllib.parse.quote_plus(f"user:{SECRET}"),
    "percent upper": "".join(f"%{b:02X}" for b in SECRET.encode()),
    "percent lower": "".join(f"%{b:02x}" for b in SECRET.encode()),
    "percent mixed": SECRET[:5] + "".join(f"%{b:02x}" for b in SECRET[5:9].encode()) + SECRET[9:],
    "json-escaped": json.dumps(SECRET.replace("_", "/")).replace("/", "\\/"),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_derived_form_is_masked(form: str) -> None:
    text = f"HTTP 400: Invalid header Authorization: Basic {FORMS[form]} (request abc-123)"
    secret = SECRET.replace("_", "/") if form == "json-escaped" else SECRET
    out = Redactor([secret]).scrub(text)
    assert FORMS[form] not in out and "***" in out
    assert out.startswith("HTTP 400: Invalid header Authorization: Basic ") and out.endswith(
        "(request abc-123)"
    )


def test_unrelated_text_and_short_secrets_are_left_alone() -> None:
    text = "run_18ed44356a17844bbf00f277 dXNlcjpwYXNzd29yZA== person3@example.com"
    assert Redactor([SECRET, "abc"]).scrub(text) == text
    assert redact("x" * 1000, [SECRET]) == "x" * MAX_ERROR_CHARS


class Echo:
    """An HttpClient answering `status` with the request's Authorization header in body and headers."""

    def __init__(self, status: int) -> None:
        self.status = status

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        auth = (headers or {})["authorization"]
        payload = json.dumps({"detail": f"bad credentials {auth} / {urllib.parse.quote(auth)}"})
        return HttpResponse(self.status, {"x-echo": auth}, payload.encode())


async def test_error_responses_are_masked_before_the_destination_reads_them() -> None:
    secrets = [SECRET]
    client = RedactingClient(Echo(401), lambda: secrets)
    auth = {"authorization": "Basic " + b64(f"magpie:{SECRET}")}
    response = await client.request("GET", "https://api.example/", headers=auth)
    text = response.body.decode() + repr(response.headers)
    assert SECRET not in text and b64(f"magpie:{SECRET}") not in text
    assert json.loads(response.body)["detail"].startswith("bad credentials Basic ***")
    secrets.append("refreshed-token-0123456789")  # a refreshed credential is masked from then on
    auth = {"authorization": "Bearer refreshed-token-0123456789"}
    assert b"refreshed-token" not in (await client.request("GET", "https://api.example/", headers=auth)).body


async def test_successful_responses_pass_untouched() -> None:
    client = RedactingClient(Echo(200), lambda: [SECRET])
    response = await client.request("POST", "https://oauth.example/token", headers={"authorization": SECRET})
    assert SECRET in response.body.decode()  # a token endpoint's answer must reach the caller intact
