"""The text form, parsed by recursive descent into the JSON form, then validated by `codec`.

    expr      := conj ('or' conj)*
    conj      := unary ('and' unary)*
    unary     := 'not' unary | '(' expr ')' | condition
    condition := trait('k') test | computed('k') cmp value | audience('k')
               | ('event' | 'page' | 'screen') '(' 'n' ')'
                   ('.where(' filter ('and' filter)* ')' | '.within(' N 'days)'
                    | '.between(' date ',' date ')')* ('.count()' cmp N)?
    filter    := property('k') test | enrichment('geo_country' | 'utm_source' | …) test
    test      := cmp value | 'in' '(' value (',' value)* ')' | '.exists()' | '.contains(' value ')'

Going through the JSON form means both forms share one validator and one tree; every JSON path
is traced back to the offset it came from, so validation errors point into the text.
"""

from __future__ import annotations

from typing import Any

from activation.audiences import codec, limits
from activation.audiences.errors import InvalidDefinition
from activation.audiences.lexer import Token, syntax_error, tokenize
from activation.audiences.tree import Node

_CMP = ("=", "!=", "≠", "<>", "==", "<", ">", "<=", ">=")


def parse(text: str) -> Node:
    """Parse the text form; raise `InvalidDefinition` with the offset of the first problem."""
    if len(text) > limits.MAX_QUERY_CHARS:
        raise syntax_error(limits.MAX_QUERY_CHARS, f"longer than {limits.MAX_QUERY_CHARS} characters")
    parser = _Parser(tokenize(text))
    raw = parser.expr(0)
    parser.expect_end()
    try:
        return codec.from_json(raw)
    except InvalidDefinition as invalid:
        raise parser.located(raw, invalid) from None


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.spots: dict[int, dict[str, int]] = {}  # id(dict or list) -> {key or index: offset}

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def note(self, obj: dict[str, Any] | list[Any], key: str, offset: int) -> None:
        self.spots.setdefault(id(obj), {}).setdefault(key, offset)

    def is_word(self, word: str) -> bool:
        return self.token.kind == "name" and self.token.text.lower() == word

    def accept(self, *texts: str) -> Token | None:
        if self.token.kind in ("op", "punct") and self.token.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text) or (self.take() if self.is_word(text) else None)
        if token is None:
            raise syntax_error(self.token.offset, f"expected {text!r}, found {self.describe()}")
        return token

    def describe(self) -> str:
        return "the end" if self.token.kind == "end" else repr(self.token.text)

    def expect_end(self) -> None:
        if self.token.kind != "end":
            raise syntax_error(self.token.offset, f"expected 'and', 'or' or the end, found {self.describe()}")

    def located(self, raw: Any, invalid: InvalidDefinition) -> InvalidDefinition:
        """Translate the first JSON path of a validation error into a text offset."""
        offsets: dict[str, int] = {}
        _trace(raw, "$", self.spots, offsets)
        path, message = next(iter(invalid.fields.items()))
        known = [p for p in offsets if path == p or path.startswith((p + ".", p + "["))]
        offset = offsets[max(known, key=len)] if known else 0
        return syntax_error(offset, f"{message} ({path})")

    def chain(self, word: str, depth: int, inner: Any) -> Any:
        start = self.token.offset
        items = [inner(depth + 1)]
        while self.is_word(word):
            self.take()
            items.append(inner(depth + 1))
        if len(items) == 1:
            return items[0]
        node = {word: items}
        self.note(node, "", start)
        return node

    def expr(self, depth: int) -> Any:
        if depth > limits.MAX_DEPTH:
            raise syntax_error(self.token.offset, f"nested deeper than {limits.MAX_DEPTH} levels")
        return self.chain("or", depth, self.conj)

    def conj(self, depth: int) -> Any:
        return self.chain("and", depth, self.unary)

    def unary(self, depth: int) -> Any:
        start = self.token.offset
        if depth > limits.MAX_DEPTH:
            raise syntax_error(start, f"nested deeper than {limits.MAX_DEPTH} levels")
        if self.is_word("not"):
            self.take()
            node = {"not": self.unary(depth + 1)}
            self.note(node, "", start)
            return node
        if self.accept("("):
            inner = self.expr(depth + 1)
            self.expect(")")
            return inner
        return self.condition()

    def condition(self) -> dict[str, Any]:
        start = self.token.offset
        kind = self.token.text.lower() if self.token.kind == "name" else ""
        if kind not in ("trait", "event", "page", "screen", "computed", "audience"):
            expected = "trait(…), event(…), page(…), screen(…), computed(…), audience(…), 'not' or '('"
            raise syntax_error(start, f"expected {expected}, found {self.describe()}")
        self.take()
        node: dict[str, Any] = {}
        self.note(node, "", start)
        node[kind] = self.call_arg(node, kind)
        if kind in ("event", "page", "screen"):
            self.event(node)
        elif kind == "computed":
            self.comparison(node)
        elif kind == "trait":
            self.test(node)
        return node

    def call_arg(self, node: dict[str, Any], key: str) -> Any:
        self.expect("(")
        value = self.value(node, key)
        self.expect(")")
        return value

    def value(self, container: dict[str, Any] | list[Any], key: str) -> Any:
        token = self.take()
        self.note(container, key, token.offset)
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "name" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        found = "the end" if token.kind == "end" else repr(token.text)
        raise syntax_error(token.offset, f"expected a string, a number, true or false, found {found}")

    def comparison(self, node: dict[str, Any]) -> None:
        self.note(node, "op", self.token.offset)
        op = self.accept(*_CMP)
        if op is None:
            raise syntax_error(self.token.offset, f"expected a comparison, found {self.describe()}")
        node["op"] = op.text
        node["value"] = self.value(node, "value")

    def test(self, node: dict[str, Any]) -> None:
        if self.is_word("in"):
            self.note(node, "op", self.take().offset)
            self.expect("(")
            values: list[Any] = []
            self.note(node, "value", self.token.offset)
            values.append(self.value(values, "0"))
            while self.accept(","):
                values.append(self.value(values, str(len(values))))
            self.expect(")")
            node.update(op="in", value=values)
        elif self.accept("."):
            self.note(node, "op", self.token.offset)
            if self.method(("exists", "contains")) == "exists":
                self.expect("(")
                self.expect(")")
                node["op"] = "exists"
            else:
                node["op"] = "contains"
                node["value"] = self.call_arg(node, "value")
        else:
            self.comparison(node)

    def method(self, allowed: tuple[str, ...]) -> str:
        token = self.take()
        if token.kind != "name" or token.text not in allowed:
            raise syntax_error(token.offset, f"expected one of {', '.join(allowed)}, found {token.text!r}")
        return token.text

    def event(self, node: dict[str, Any]) -> None:
        while self.accept("."):
            start = self.token.offset
            method = self.method(("where", "within", "between", "count"))
            self.expect("(")
            if method == "count":
                self.expect(")")
                count: dict[str, Any] = {}
                self.note(node, "count", start)
                self.comparison(count)
                node["count"] = count
                return
            if method != "within":  # within's offset is its value's
                self.note(node, method, start)
            getattr(self, f"event_{method}")(node)
            self.expect(")")

    def event_where(self, node: dict[str, Any]) -> None:
        filters = node.setdefault("where", [])
        while True:
            start = self.token.offset
            kind = next((word for word in ("property", "enrichment") if self.is_word(word)), "")
            if not kind:
                raise syntax_error(start, f"expected property(…) or enrichment(…), found {self.describe()}")
            self.take()
            item: dict[str, Any] = {}
            self.note(item, "", start)
            item[kind] = self.call_arg(item, kind)
            self.test(item)
            filters.append(item)
            if not self.is_word("and"):
                return
            self.take()

    def event_within(self, node: dict[str, Any]) -> None:
        node["within_days"] = self.value(node, "within_days")
        if not (self.is_word("days") or self.is_word("day")):
            raise syntax_error(self.token.offset, f"expected 'days', found {self.describe()}")
        self.take()

    def event_between(self, node: dict[str, Any]) -> None:
        bounds: list[Any] = []
        bounds.append(self.value(bounds, "0"))
        self.expect(",")
        bounds.append(self.value(bounds, "1"))
        node["between"] = bounds


def _trace(raw: Any, path: str, spots: dict[int, dict[str, int]], out: dict[str, int]) -> None:
    """Give every JSON path of the parsed value the offset noted for it."""
    if not isinstance(raw, dict | list):
        return
    noted = spots.get(id(raw), {})
    if "" in noted:
        out.setdefault(path, noted[""])
    pairs = raw.items() if isinstance(raw, dict) else ((str(i), v) for i, v in enumerate(raw))
    for key, value in pairs:
        child = f"{path}.{key}" if isinstance(raw, dict) else f"{path}[{key}]"
        if key in noted:
            out[child] = noted[key]
        _trace(value, child, spots, out)
