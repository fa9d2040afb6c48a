"""The scanner that routes HTTP queries: kinds, output formats, multi-statements and where an
INSERT's inline data starts (keywords inside strings and comments never count)."""

from __future__ import annotations

import pytest

from clickhouse.server_sql import NEED_MORE, InlineInsert, analyze, find_inline_insert


def test_inline_insert_data_starts_after_the_format_name_and_one_newline() -> None:
    text = b"INSERT INTO t (a, b) SETTINGS x = 'FORMAT CSV' FORMAT JSONEachRow \n\n{\"a\": 1}"
    found = find_inline_insert(text, True)
    assert isinstance(found, InlineInsert)
    assert (found.fmt, text[found.data_offset :]) == ("JSONEachRow", b'\n{"a": 1}')
    assert found.header == b"INSERT INTO t (a, b) SETTINGS x = 'FORMAT CSV' "


def test_values_and_binary_data_after_the_header() -> None:
    found = find_inline_insert(b"insert into t values (1, 'a;b'), (2, 'c')", True)
    assert isinstance(found, InlineInsert) and found.fmt == "Values"
    native = b"INSERT INTO t FORMAT Native\n\x01\x02\xff'\x00"
    found = find_inline_insert(native, True)
    assert isinstance(found, InlineInsert) and native[found.data_offset :] == b"\x01\x02\xff'\x00"


@pytest.mark.parametrize(
    "text",
    [
        b"INSERT INTO t SELECT * FROM s FORMAT CSV",
        b"INSERT INTO t FROM INFILE 'f.csv' FORMAT CSV",
        b"SELECT 'INSERT INTO t FORMAT CSV'",
        b"/* INSERT INTO t FORMAT CSV */ SELECT 1",
        b"INSERT INTO t; DROP TABLE t; INSERT INTO t FORMAT CSV\n1",
    ],
)
def test_no_inline_data(text: bytes) -> None:
    assert find_inline_insert(text, True) is None


def test_a_header_cut_by_the_buffer_asks_for_more() -> None:
    assert find_inline_insert(b"INSERT INTO t FORM", False) == NEED_MORE
    assert find_inline_insert(b"INSERT INTO t FORMAT JSONEach", False) == NEED_MORE
    assert find_inline_insert(b"INSERT INTO t SETTINGS x = 'unterminated", False) == NEED_MORE
    assert find_inline_insert(b"INS", False) == NEED_MORE
    assert find_inline_insert(b"SELECT 1", False) is None


def test_analyze_reads_kind_format_and_multi_statements() -> None:
    stmt = analyze(b"-- note\nSELECT format, 'FORMAT XML' FROM t FORMAT JSON SETTINGS max_threads = 1;")
    assert (stmt.kind, stmt.output_format, stmt.multiple) == ("SELECT", "JSON", False)
    assert analyze(b"SELECT 1; DROP TABLE t").multiple
    assert not analyze(b"SELECT ';' ; -- trailing comment").multiple
    assert analyze(b"(SELECT 1)").kind == "("
    assert (analyze(b"create temporary table x (a Int8)").second) == "TEMPORARY"
    assert analyze(b"SELECT formatDateTime(now(), '%F')").output_format == ""
