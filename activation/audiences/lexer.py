"""Tokens of the text form, each with the character offset where it starts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from activation.audiences.errors import InvalidDefinition

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op><=|>=|!=|<>|==|≠|=|<|>)
      | (?P<punct>[(),.])
      | (?P<quote>['"])""",
    re.VERBOSE,
)
MAX_NUMBER_CHARS = 40
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, string, op, punct, end
    text: str
    offset: int
    value: str | int | float | None = None


def syntax_error(offset: int, message: str) -> InvalidDefinition:
    return InvalidDefinition({"query": f"offset {offset}: {message}"}, offset=offset)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise syntax_error(pos, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        if kind == "quote":
            token, pos = _string(text, pos)
            tokens.append(token)
            continue
        if kind == "number":
            tokens.append(_number(match.group(), pos))
        elif kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _number(number: str, offset: int) -> Token:
    """A number token; longer numbers than any definition needs are refused before conversion
    (Python will not even convert an integer of more than 4,300 digits)."""
    if len(number) > MAX_NUMBER_CHARS:
        raise syntax_error(offset, f"a number of more than {MAX_NUMBER_CHARS} characters")
    value: int | float = float(number) if any(c in number for c in ".eE") else int(number)
    return Token("number", number, offset, value)


def _string(text: str, start: int) -> tuple[Token, int]:
    """A quoted string with backslash escapes (\\n \\t \\r \\0 \\\\ \\' \\" and \\uXXXX)."""
    quote, pos, out = text[start], start + 1, []
    while pos < len(text) and text[pos] != quote:
        char = text[pos]
        if char == "\\":
            char, pos = _escape(text, pos)
        else:
            pos += 1
        out.append(char)
    if pos >= len(text):
        raise syntax_error(start, "unterminated string")
    return Token("string", text[start : pos + 1], start, "".join(out)), pos + 1


def _escape(text: str, pos: int) -> tuple[str, int]:
    code = text[pos + 1 : pos + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], pos + 2
    digits = text[pos + 2 : pos + 6]
    if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", digits):
        return chr(int(digits, 16)), pos + 6
    raise syntax_error(pos, "unknown escape in string")
