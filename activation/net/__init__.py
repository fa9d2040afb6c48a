"""Outbound HTTP safety: refuse private, loopback, link-local and metadata targets unless allow-listed."""

from activation.net.allowlist import EMPTY, AllowList, AllowListError, parse_allow_list
from activation.net.guard import Resolve, UnsafeDestination, check_url, check_url_syntax, system_resolve
from activation.net.session import HttpClient, HttpResponse, SafeSession, TransportError, safe_session

ALLOW_ENV_VAR = "MAGPIE_ALLOW_PRIVATE_DESTINATIONS"

__all__ = [
    "ALLOW_ENV_VAR",
    "EMPTY",
    "AllowList",
    "AllowListError",
    "HttpClient",
    "HttpResponse",
    "Resolve",
    "SafeSession",
    "TransportError",
    "UnsafeDestination",
    "check_url",
    "check_url_syntax",
    "parse_allow_list",
    "safe_session",
    "system_resolve",
]
