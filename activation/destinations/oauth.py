"""OAuth2 refresh-token grant (Google, HubSpot): one form POST, new credentials back."""

from __future__ import annotations

from activation.destinations.base import Credentials, PermanentError, RetryableError
from activation.destinations.http import FORM_HEADERS, as_dict, call, form_bytes, parse_retry_after
from activation.net import HttpClient


async def refresh_access_token(
    session: HttpClient, token_url: str, credentials: Credentials, what: str
) -> Credentials:
    """POST grant_type=refresh_token; returns credentials with the new access (and refresh) token."""
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
        raise RetryableError(f"{what}: token refresh HTTP {response.status}", retry_after)
    token = body.get("access_token")
    if response.status >= 300 or not isinstance(token, str) or not token:
        error = body.get("error") if isinstance(body.get("error"), str) else "invalid_response"
        raise PermanentError(f"{what}: token refresh failed ({error}); re-authorise the destination")
    changes = {"access_token": token}
    new_refresh = body.get("refresh_token")
    if isinstance(new_refresh, str) and new_refresh:
        changes["refresh_token"] = new_refresh
    return credentials.updated(changes)
