"""ClickHouse's error vocabulary over HTTP: `Code: N. DB::Exception: ... (NAME) (version V)` bodies,
the `X-ClickHouse-Exception-Code` header and the HTTP status ClickHouse picks for each code
(src/Server/HTTP/exceptionCodeToHTTPStatus.cpp)."""

from __future__ import annotations

import re

# The codes this server raises itself (tests check them against chdb's errorCodeToName).
CODES = {
    "BAD_ARGUMENTS": 36,
    "NOT_IMPLEMENTED": 48,
    "SYNTAX_ERROR": 62,
    "UNKNOWN_FORMAT": 73,
    "UNKNOWN_COMPRESSION_METHOD": 89,
    "UNKNOWN_SETTING": 115,
    "READONLY": 164,
    "QUERY_IS_TOO_LARGE": 229,
    "CANNOT_DECOMPRESS": 271,
    "SESSION_NOT_FOUND": 372,
    "SESSION_IS_LOCKED": 373,
    "QUERY_WAS_CANCELLED": 394,
    "AUTHENTICATION_FAILED": 516,
    "STD_EXCEPTION": 1001,
}

_BAD_REQUEST = frozenset(
    [
        "BAD_ARGUMENTS",
        "CANNOT_COMPILE_REGEXP",
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING",
        "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
        "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_UUID",
        "DUPLICATE_COLUMN",
        "ILLEGAL_COLUMN",
        "UNKNOWN_ELEMENT_IN_AST",
        "UNKNOWN_TYPE_OF_AST_NODE",
        "THERE_IS_NO_COLUMN",
        "TOO_DEEP_AST",
        "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE",
        "SYNTAX_ERROR",
        "INCORRECT_DATA",
        "TYPE_MISMATCH",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    ]
)
_NOT_FOUND = frozenset(
    [
        "UNKNOWN_TABLE",
        "UNKNOWN_FUNCTION",
        "UNKNOWN_IDENTIFIER",
        "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE",
        "UNKNOWN_SETTING",
        "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION",
        "UNKNOWN_FORMAT",
        "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY",
        "UNKNOWN_ROLE",
    ]
)
_STATUS = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"),
        403,
    ),
    **dict.fromkeys(_BAD_REQUEST, 400),
    **dict.fromkeys(_NOT_FOUND, 404),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    # Not in ClickHouse's table (it answers 500): a body we cannot decompress is the client's fault.
    "UNKNOWN_COMPRESSION_METHOD": 400,
    "CANNOT_DECOMPRESS": 400,
}

_CODE = re.compile(r"Code: (\d+)\. ")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")


class ClickHouseError(Exception):
    """One ClickHouse exception: its numeric code, symbolic name and `Code: ...` text."""

    def __init__(self, code: int, name: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.name = name
        self.text = text

    @property
    def status(self) -> int:
        return _STATUS.get(self.name, 500)

    def body(self, version: str) -> bytes:
        return f"{self.text} (version {version})\n".encode()


def error(name: str, message: str) -> ClickHouseError:
    """An error this server raises, worded the way ClickHouse words its own."""
    code = CODES[name]
    return ClickHouseError(code, name, f"Code: {code}. DB::Exception: {message}. ({name})")


def from_engine(exc: BaseException) -> ClickHouseError:
    """Parse the exception chdb raised (its text carries `Code: N. DB::Exception: ... (NAME)`)."""
    message = str(exc)
    start = message.find("Code: ")
    code = _CODE.match(message, start) if start >= 0 else None
    if code is None:
        return error("STD_EXCEPTION", message.strip() or type(exc).__name__)
    text = message[start:].strip()
    name = _NAME.search(text)
    return ClickHouseError(int(code.group(1)), name.group(1) if name else "", text)
