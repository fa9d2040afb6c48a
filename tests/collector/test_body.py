"""Request bodies: the tolerant parser's rules (numbers, NaN, UTF-8, surrogates, depth) and the
serialisation guards, without a server."""

from __future__ import annotations

import time

import orjson
import pytest

from collector.body import BodyError, dump, parse_json, pruned


def nested(levels: int, leaf: bytes = b"1") -> bytes:
    return b"[" * levels + leaf + b"]" * levels


def test_big_integers_follow_one_rule_on_the_fast_and_the_lenient_path() -> None:
    body = (
        b'{"big": 123456789012345678901234567890, "max": 18446744073709551615, "min": -9223372036854775808}'
    )
    fast = parse_json(body)
    lenient = parse_json(body[:-1] + b', "nan": NaN}')
    assert fast == {k: v for k, v in lenient.items() if k != "nan"}
    assert lenient == {"big": 1.2345678901234568e29, "max": 2**64 - 1, "min": -(2**63), "nan": None}
    assert orjson.loads(orjson.dumps(lenient)) == lenient  # serialisable: no int beyond 64 bits survives


def test_non_finite_numbers_become_null_and_text_is_repaired() -> None:
    body = (
        b'{"a": [NaN, Infinity, -Infinity, 1e999, 1'
        + b"0" * 400
        + b', 1.5e3], "s": "x\xff\\ud800 \\ud83d\\ude00"}'
    )
    assert parse_json(body) == {"a": [None, None, None, None, None, 1500.0], "s": "x\ufffd\ufffd \U0001f600"}


def test_text_that_only_looks_special_is_left_alone() -> None:
    body = b'{"s": "NaN Infinity \\\\ud800 1e999", "k": "\\"quoted\\"", "nan": NaN}'
    assert parse_json(body) == {"s": "NaN Infinity \\ud800 1e999", "k": '"quoted"', "nan": None}


def test_nine_hundred_levels_with_nan_parse_without_recursion_and_1100_are_a_400() -> None:
    value = parse_json(nested(900, b"NaN"))
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert depth == 900 and value is None
    with pytest.raises(BodyError) as refused:
        parse_json(nested(1100, b"NaN"))
    assert (refused.value.status, refused.value.code) == (400, "too_deep")
    with pytest.raises(BodyError) as invalid:
        parse_json(b'{"a": NaN')
    assert invalid.value.code == "invalid_json"


def test_pathological_text_is_scanned_in_linear_time() -> None:
    started = time.perf_counter()
    for body in (b'"' + b'\\"' * 200_000, b"\\u" * 200_000, b"1" * 400_000, b'"\\ud800' * 50_000):
        with pytest.raises(BodyError):
            parse_json(body + b"x")
    assert time.perf_counter() - started < 3


def test_dump_refuses_what_orjson_cannot_write_and_pruned_can_always_be_written() -> None:
    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    assert dump(deep) is None and dump({"a": 1}) == b'{"a":1}'
    shown = orjson.loads(orjson.dumps(pruned({"keep": "me", "deep": deep}, max_depth=3)))
    assert shown == {"keep": "me", "deep": {"a": {"a": "…"}}}
