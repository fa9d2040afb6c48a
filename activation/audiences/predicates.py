"""SQL tests on one JSON-encoded value (a trait's `value`, an event property), every operand bound.

The value is `doc` (a column holding JSON) at the path `keys` (bound key parameters, possibly
none): every JSON function is called as `f(doc, keys…)` so the document is parsed in place (no
JSONExtractRaw round trip, which is several times slower). Values of the definition only ever enter
through `Params.bind`, which returns a `{pN:Type}` placeholder for server-side binding.
Semantics: strings compare as strings, numbers numerically (numeric strings count as numbers),
booleans only by equality; `!=` needs the value present; `contains` is a substring of a string or
an element of an array of strings.
"""

from __future__ import annotations

from typing import Any

from activation.audiences.tree import Compare, Scalar

_NUMERIC_TYPES = "('Int64', 'UInt64', 'Double')"


class Params:
    """The parameters of one query, named p0, p1, … in binding order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any, sql_type: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{sql_type}}}"


def json_test(doc: str, keys: str, test: Compare, params: Params) -> str:
    """A boolean SQL expression, never NULL, for `test` applied to the JSON value at `doc`, `keys`
    (`keys` is '' for the whole document, else ', {p1:String}, {p2:String}')."""
    raw = f"{doc}{keys}"
    if test.op == "exists":
        return f"JSONType({raw}) != 'Null'"
    if test.op == "contains":
        needle = params.bind(test.value, "String")
        return (
            f"(positionUTF8(JSONExtractString({raw}), {needle}) > 0"
            f" OR has(JSONExtract({raw}, 'Array(String)'), {needle}))"
        )
    if test.op == "in" and isinstance(test.value, tuple):
        return _in_list(raw, test.value, params)
    if test.op == "!=":
        return f"(JSONType({raw}) != 'Null' AND NOT {_compare(raw, '=', test.value, params)})"
    return _compare(raw, test.op, test.value, params)


def _compare(raw: str, op: str, value: Any, params: Params) -> str:
    if isinstance(value, bool):
        return f"(JSONType({raw}) = 'Bool' AND JSONExtractBool({raw}) = {params.bind(value, 'Bool')})"
    if isinstance(value, int | float):
        return f"coalesce({number(raw)} {op} {params.bind(float(value), 'Float64')}, false)"
    return f"(JSONType({raw}) = 'String' AND JSONExtractString({raw}) {op} {params.bind(value, 'String')})"


def number(raw: str) -> str:
    """The value as Float64: a JSON number, or a string holding one; NULL otherwise."""
    return (
        f"multiIf(JSONType({raw}) IN {_NUMERIC_TYPES}, JSONExtractFloat({raw}),"
        f" JSONType({raw}) = 'String', toFloat64OrNull(JSONExtractString({raw})), NULL)"
    )


def _in_list(raw: str, values: tuple[Scalar, ...], params: Params) -> str:
    strings = [v for v in values if isinstance(v, str)]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    flags = [v for v in values if isinstance(v, bool)]
    tests = []
    if strings:
        bound = params.bind(strings, "Array(String)")
        tests.append(f"(JSONType({raw}) = 'String' AND has({bound}, JSONExtractString({raw})))")
    if numbers:
        tests.append(f"coalesce(has({params.bind(numbers, 'Array(Float64)')}, {number(raw)}), false)")
    tests.extend(_compare(raw, "=", flag, params) for flag in sorted(set(flags)))
    return "(" + " OR ".join(tests) + ")"


def column_test(column: str, test: Compare, params: Params) -> str:
    """A boolean SQL expression for `test` on a plain String column ('' means unknown)."""
    if test.op == "exists":
        return f"{column} != ''"
    if test.op == "in" and isinstance(test.value, tuple):
        return f"has({params.bind(list(test.value), 'Array(String)')}, {column})"
    bound = params.bind(test.value, "String")
    if test.op == "contains":
        return f"positionUTF8({column}, {bound}) > 0"
    if test.op == "!=":
        return f"({column} != '' AND {column} != {bound})"
    return f"{column} = {bound}"


def holds(left: float, op: str, right: float) -> bool:
    """`left op right` for the comparison operators of the tree."""
    results = {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        ">": left > right,
        "<=": left <= right,
        ">=": left >= right,
    }
    return results[op]
