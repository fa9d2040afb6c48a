"""One HTTP request read the way ClickHouse's HTTP handler reads it: URL (or form) parameters split
into the query, transport options, `param_*` query parameters and settings; the credentials from
exactly one of X-ClickHouse-User/Key, Basic auth or user/password parameters."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from clickhouse.server_errors import ClickHouseError, error

USER = "default"
DEFAULT_FORMAT = "TabSeparated"
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0

# Parameters the HTTP layer consumes; they never reach the engine as settings.
_TRANSPORT = frozenset(
    [
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "cancel_http_readonly_queries_on_client_close",
        "stacktrace",
        "add_http_cors_header",
    ]
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QueryRequest:
    method: str
    query: bytes = b""  # the `query` parameter (the body, if any, continues it)
    database: str | None = None
    default_format: str = DEFAULT_FORMAT
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    session_id: str = ""
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    session_check: bool = False
    query_id: str = ""
    compression: bool | None = None  # enable_http_compression, None when not given
    wait_end_of_query: bool = False
    internal_compression: bool = False  # compress=1 / decompress=1 (ClickHouse's block format)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _timeout_s(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise error("BAD_ARGUMENTS", f"Invalid session timeout: '{raw}'") from None
    if not 0 < value <= MAX_SESSION_TIMEOUT_S:
        raise error("BAD_ARGUMENTS", f"Session timeout must be in (0, {MAX_SESSION_TIMEOUT_S:g}] seconds")
    return value


def parse_params(method: str, pairs: list[tuple[str, str]]) -> QueryRequest:
    """Split URL/form parameters into the parts of a query request."""
    given = dict(pairs)
    settings, params = {}, {}
    for name, value in pairs:
        if name.startswith("param_"):
            params[name[len("param_") :]] = value
        elif name not in _TRANSPORT and not name.startswith("http_"):
            if not _SETTING_NAME.match(name):
                raise error("UNKNOWN_SETTING", f"Unknown setting '{name}'")
            settings[name] = value
    compression = given.get("enable_http_compression")
    return QueryRequest(
        method=method,
        query=given.get("query", "").encode(),
        database=given.get("database") or None,
        default_format=given.get("default_format") or DEFAULT_FORMAT,
        settings=settings,
        params=params,
        session_id=given.get("session_id", ""),
        session_timeout_s=_timeout_s(given["session_timeout"])
        if "session_timeout" in given
        else DEFAULT_SESSION_TIMEOUT_S,
        session_check=_flag(given.get("session_check", "0")),
        query_id=given.get("query_id", ""),
        compression=None if compression is None else _flag(compression),
        wait_end_of_query=_flag(given.get("wait_end_of_query", "0")),
        internal_compression=_flag(given.get("compress", "0")) or _flag(given.get("decompress", "0")),
    )


def query_pairs(raw_query_string: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw_query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")


def form_pairs(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a multipart form body (clickhouse-connect sends large query parameters as
    multipart fields; an urlencoded body is the query itself, as `curl -d` sends it). External-data
    file parts are refused."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    pairs = []
    for part in message.iter_parts():
        if part.get_filename():
            raise error("NOT_IMPLEMENTED", "External data (file parts in a form) is not supported")
        payload = part.get_payload(decode=True)
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(payload, bytes):
            pairs.append((name, payload.decode("utf-8", "surrogateescape")))
    return pairs


def credentials(headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> tuple[str, str]:
    """(user, password) from exactly one authentication method, as ClickHouse insists."""
    given = dict(pairs)
    in_params = "user" in given or "password" in given
    header_user, header_key = headers.get("x-clickhouse-user", ""), headers.get("x-clickhouse-key", "")
    authorization = headers.get("authorization", "")
    if header_user or header_key:
        if authorization or in_params:
            raise _mixed(
                "X-ClickHouse HTTP headers", "Authorization HTTP header" if authorization else "parameters"
            )
        return header_user or USER, header_key
    if authorization:
        if in_params:
            raise _mixed("Authorization HTTP header", "authentication via parameters")
        return _basic(authorization)
    return given.get("user") or USER, given.get("password", "")


def _mixed(first: str, second: str) -> ClickHouseError:
    return error(
        "AUTHENTICATION_FAILED",
        f"Invalid authentication: it is not allowed to use {first} and {second} simultaneously",
    )


def _basic(authorization: str) -> tuple[str, str]:
    scheme, _, info = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise error(
            "AUTHENTICATION_FAILED",
            f"Invalid authentication: '{scheme}' HTTP Authorization scheme is not supported",
        )
    try:
        user, _, password = base64.b64decode(info.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise error("AUTHENTICATION_FAILED", "Invalid authentication: malformed Basic credentials") from None
    return user or USER, password


def authenticate(expected_password: str, user: str, password: str) -> None:
    """Only `default` exists; with no password configured it accepts any (ClickHouse's no_password)."""
    password_ok = not expected_password or hmac.compare_digest(password.encode(), expected_password.encode())
    if not (user == USER and password_ok):
        raise error(
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )
