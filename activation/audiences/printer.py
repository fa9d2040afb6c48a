"""Render a tree in the text form; `parse(render(tree)) == tree` for every valid tree."""

from __future__ import annotations

from activation.audiences.tree import (
    And,
    Compare,
    Computed,
    Enrichment,
    Event,
    Filter,
    Member,
    Node,
    Not,
    Or,
    Scalar,
    Trait,
)

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def render(node: Node) -> str:
    if isinstance(node, And):
        return " and ".join(_grouped(item, (And, Or)) for item in node.items)
    if isinstance(node, Or):
        return " or ".join(_grouped(item, (Or,)) for item in node.items)
    if isinstance(node, Not):
        return "not " + _grouped(node.item, (And, Or))
    if isinstance(node, Trait):
        return f"trait({quote(node.name)}){_test(node.test)}"
    if isinstance(node, Computed):
        return f"computed({quote(node.name)}) {node.op} {literal(node.value)}"
    if isinstance(node, Member):
        return f"audience({quote(node.audience)})"
    return _event(node)


def _grouped(node: Node, needs_parens: tuple[type, ...]) -> str:
    text = render(node)
    return f"({text})" if isinstance(node, needs_parens) else text


def _test(test: Compare) -> str:
    if test.op == "exists":
        return ".exists()"
    if test.op == "contains":
        return f".contains({literal(test.value)})"  # type: ignore[arg-type]
    if test.op == "in" and isinstance(test.value, tuple):
        return f" in ({', '.join(literal(v) for v in test.value)})"
    return f" {test.op} {literal(test.value)}"  # type: ignore[arg-type]


def _event(node: Event) -> str:
    parts = [f"{node.kind}({quote(node.name)})"]
    if node.where:
        filters = " and ".join(_filter(f) for f in node.where)
        parts.append(f".where({filters})")
    if node.within_days is not None:
        parts.append(f".within({node.within_days} days)")
    if node.between is not None:
        parts.append(f".between({quote(node.between[0])}, {quote(node.between[1])})")
    parts.append(f".count() {node.count.op} {node.count.value}")
    return "".join(parts)


def _filter(item: Filter) -> str:
    if isinstance(item, Enrichment):
        return f"enrichment({quote(item.field)}){_test(item.test)}"
    return f"property({quote(item.path)}){_test(item.test)}"


def literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote(value)


def quote(text: str) -> str:
    escaped = "".join(_ESCAPES.get(c, f"\\u{ord(c):04x}" if _is_control(c) else c) for c in text)
    return f"'{escaped}'"


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0
