"""Just enough of ClickHouse's lexer to route one HTTP query: the statement's kind, its output
FORMAT, where an INSERT's inline data starts, and whether a second statement follows.

Works on bytes (an INSERT's data may be binary) and never interprets what it skips: strings,
quoted identifiers and comments are stepped over whole, so a keyword inside them counts for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

WORD, STRING, QUOTED, NUMBER, PUNCT, SEMI, INCOMPLETE = range(7)

# Statements that answer with a result set (ClickHouse's ASTQueryWithOutput), and the ones a
# read-only GET may run (readonly=2: reads plus changing settings).
RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK", "("})
READ_KINDS = RESULT_KINDS | {"SET", "USE"}
STREAM_KINDS = frozenset({"SELECT", "WITH", "("})  # the ones chdb's send_query accepts

_WORD_RE = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_NUMBER_RE = re.compile(rb"[0-9][0-9A-Za-z_.]*([eEpP][+-][0-9]+)?")
_SPACE = b" \t\r\n\f\v"


@dataclass(frozen=True)
class Statement:
    kind: str  # the first keyword, upper-cased ("(" for a parenthesised SELECT, "" if none)
    second: str  # the second keyword, upper-cased (to tell CREATE TEMPORARY from CREATE)
    output_format: str  # the last top-level `FORMAT name`, or ""
    multiple: bool  # a second statement follows a top-level `;`


@dataclass(frozen=True)
class InlineInsert:
    header: bytes  # `INSERT INTO t (a, b) SETTINGS ...` without FORMAT/VALUES and the data
    fmt: str  # the input format; "Values" for `VALUES`
    data_offset: int  # where the data starts in the scanned buffer


NEED_MORE = "need more"


def _skip_quoted(text: bytes, start: int, quote: int) -> int:
    """The end of a quoted token starting at `start`, or -1 if it does not end in `text`."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == 0x5C:  # backslash escapes the next byte
            i += 2
            continue
        if c == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def _skip_block_comment(text: bytes, start: int) -> int:
    depth, i = 0, start
    while i < len(text) - 1:
        pair = text[i : i + 2]
        if pair == b"/*":
            depth, i = depth + 1, i + 2
        elif pair == b"*/":
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return -1


def _skip_comment(text: bytes, i: int) -> int | None:
    """The end of a comment starting at `i`, -1 if unterminated, None if none starts there."""
    if text.startswith(b"--", i) or text[i] == 0x23:  # `--` or `#` to the end of the line
        end = text.find(b"\n", i)
        return len(text) if end < 0 else end + 1
    if text.startswith(b"/*", i):
        return _skip_block_comment(text, i)
    return None


def tokens(text: bytes, start: int = 0) -> Iterator[tuple[int, int, int]]:
    """Yield (kind, start, end) for each token; INCOMPLETE ends the scan at an unterminated token."""
    i = start
    while i < len(text):
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        comment = _skip_comment(text, i)
        if comment is not None:
            if comment < 0:
                yield INCOMPLETE, i, len(text)
                return
            i = comment
            continue
        kind, end = _token_at(text, i)
        if end < 0:
            yield INCOMPLETE, i, len(text)
            return
        yield kind, i, end
        i = end


def _token_at(text: bytes, i: int) -> tuple[int, int]:
    c = text[i]
    if c == 0x27:  # '
        return STRING, _skip_quoted(text, i, c)
    if c in (0x22, 0x60):  # " or `
        return QUOTED, _skip_quoted(text, i, c)
    word = _WORD_RE.match(text, i)
    if word:
        return WORD, word.end()
    number = _NUMBER_RE.match(text, i)
    if number:
        return NUMBER, number.end()
    return (SEMI if c == 0x3B else PUNCT), i + 1


def _upper(text: bytes, start: int, end: int) -> str:
    return text[start:end].decode("utf-8", "replace").upper()


def _depth_change(text: bytes, kind: int, start: int) -> int:
    if kind != PUNCT:
        return 0
    return {0x28: 1, 0x5B: 1, 0x29: -1, 0x5D: -1}.get(text[start], 0)


def _follows_format(text: bytes, previous: tuple[int, int, int] | None) -> bool:
    return previous is not None and previous[0] == WORD and _upper(text, previous[1], previous[2]) == "FORMAT"


def analyze(text: bytes) -> Statement:
    """Kind, output format and multi-statement flag of one complete (non-inline-insert) query."""
    kinds: list[str] = []
    output_format, depth, after_semi, multiple = "", 0, False, False
    previous: tuple[int, int, int] | None = None
    for token in tokens(text):
        kind, start, end = token
        if after_semi:
            multiple = True
            break
        if len(kinds) < 2 and kind in (WORD, PUNCT):
            kinds.append(_upper(text, start, end))
        if kind == SEMI and depth == 0:
            after_semi = True
        elif kind == WORD and depth == 0 and _follows_format(text, previous):
            output_format = text[start:end].decode("utf-8", "replace")
        depth += _depth_change(text, kind, start)
        previous = token
    kinds += ["", ""]
    return Statement(kinds[0], kinds[1], output_format, multiple)


def _data_start(text: bytes, i: int, complete: bool) -> int | None:
    """ClickHouse's rule: data starts after the first newline, or after the blanks before it."""
    while i < len(text) and text[i] in b" \t\f":
        i += 1
    if i == len(text) and not complete:
        return None
    if text.startswith(b"\r", i):
        i += 1
    if text.startswith(b"\n", i):
        i += 1
    return i


def find_inline_insert(text: bytes, complete: bool) -> InlineInsert | str | None:
    """Where an `INSERT ... FORMAT x` / `INSERT ... VALUES` header ends and its data begins.

    Returns None when `text` is no INSERT with inline data (INSERT SELECT, FROM INFILE, any other
    statement), NEED_MORE when the buffer ends before the header does and more is coming.
    """
    depth, first = 0, True
    scan = tokens(text)
    for kind, start, end in scan:
        word = _upper(text, start, end) if kind == WORD else ""
        if first:
            if word != "INSERT":
                return None if complete or end < len(text) else NEED_MORE
            first = False
            continue
        if kind == INCOMPLETE or (end == len(text) and not complete):
            return NEED_MORE
        if depth == 0 and (word in ("SELECT", "WITH", "INFILE") or kind == SEMI):
            return None  # no inline data (a `;` first: let the statement check refuse the rest)
        if depth == 0 and word == "VALUES":
            return InlineInsert(text[:start], "Values", end)
        if depth == 0 and word == "FORMAT":
            return _format_insert(text, start, scan, complete)
        depth += _depth_change(text, kind, start)
    return None if complete else NEED_MORE


def _format_insert(
    text: bytes, format_start: int, scan: Iterator[tuple[int, int, int]], complete: bool
) -> InlineInsert | str | None:
    name = next(scan, None)
    if name is None or (name[2] == len(text) and not complete):
        return None if complete else NEED_MORE
    if name[0] != WORD:
        return None
    data = _data_start(text, name[2], complete)
    if data is None:
        return NEED_MORE
    fmt = text[name[1] : name[2]].decode("utf-8", "replace")
    return InlineInsert(text[:format_start], fmt, data)
