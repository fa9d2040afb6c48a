"""Salesforce OAuth 2 refresh-token grant: a new access token for the configured instance."""

from __future__ import annotations

from yarl import URL

from activation.destinations.base import Credentials, PermanentError, RetryableError
from activation.destinations.http import FORM_HEADERS, as_dict, call, form_bytes, parse_retry_after
from activation.net import HttpClient


async def refresh(
    session: HttpClient, token_url: str, instance_url: str, credentials: Credentials
) -> Credentials:
    """`grant_type=refresh_token`; the answer's `instance_url` must be the configured one (same host)."""
    fields = {
        "grant_type": "refresh_token",
        "client_id": credentials.require("client_id"),
        "client_secret": credentials.require("client_secret"),
        "refresh_token": credentials.require("refresh_token"),
    }
    response = await call(session, "POST", token_url, headers=FORM_HEADERS, body=form_bytes(fields))
    body = as_dict(response.json())
    if response.status == 429 or response.status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise RetryableError(f"salesforce: token refresh HTTP {response.status}", retry_after)
    token = body.get("access_token")
    if response.status >= 300 or not isinstance(token, str) or not token:
        error = body.get("error") if isinstance(body.get("error"), str) else "invalid_response"
        raise PermanentError(f"salesforce: token refresh failed ({error}); re-authorise the destination")
    instance = body.get("instance_url")
    if isinstance(instance, str) and URL(instance).host != URL(instance_url).host:
        raise PermanentError("salesforce: the token is for another instance_url; update the config")
    return credentials.updated({"access_token": token})
