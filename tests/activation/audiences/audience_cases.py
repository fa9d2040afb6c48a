"""A generated table of definition trees (seeded, so every run checks the same cases)."""

from __future__ import annotations

import random

from activation.audiences.tree import (
    COMPARISONS,
    COMPUTED,
    And,
    Compare,
    Computed,
    Count,
    Event,
    Member,
    Node,
    Not,
    Or,
    Property,
    Scalar,
    Trait,
)

HOSTILE = [
    "'; DROP TABLE events; --",
    "x' OR '1'='1",
    "a\\' OR 1=1 -- ",
    "/* comment */ 1",
    "-- trailing",
    "back\\slash\\",
    "nul\x00byte",
    "new\nline\ttab\rcr",
    "url('http://169.254.169.254/latest/meta-data')",
    "file('/etc/passwd')",
    "remote('127.0.0.1', system.users)",
    "1 FROM system.tables",
    "SETTINGS readonly=0",
    "FORMAT TabSeparated",
    "{p0:String}",
    "{p1:Array(String)}",
    "%(x)s",
    '"double" `back` $dollar',
    "ünïcødé 🐦 \u2028 sep",
    "\x7f\x1b[31m",
]
WORDS = ["plan", "pro", "Order Completed", "total", "DE", "a.b", "x", "2026-01-01", *HOSTILE]


def _scalar(rng: random.Random) -> Scalar:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice([True, False])
    if kind == 1:
        return rng.randrange(-1000, 1000)
    if kind == 2:
        return rng.choice([0.5, -2.25, 1e15, 3.0, 1e-07])
    return rng.choice(WORDS)


def _compare(rng: random.Random) -> Compare:
    op = rng.choice([*COMPARISONS, "contains", "exists", "in"])
    if op == "exists":
        return Compare(op)
    if op == "in":
        return Compare(op, tuple(_scalar(rng) for _ in range(rng.randrange(1, 5))))
    if op == "contains":
        return Compare(op, rng.choice(WORDS))
    value = _scalar(rng)
    if op in ("<", ">", "<=", ">=") and isinstance(value, bool):
        value = 1
    return Compare(op, value)


def _event(rng: random.Random) -> Event:
    props = tuple(
        Property(rng.choice(["total", "a.b", "item.price", "k"]), _compare(rng))
        for _ in range(rng.randrange(3))
    )
    within = rng.choice([None, 1, 30, 365])
    between = None if within or rng.random() < 0.5 else ("2026-01-01", "2026-02-01T12:00:00+00:00")
    count = Count(rng.choice(COMPARISONS), rng.randrange(0, 5))
    return Event(rng.choice(WORDS), props, within, between, count)


def _leaf(rng: random.Random) -> Node:
    kind = rng.randrange(4)
    if kind == 0:
        return Trait(rng.choice(WORDS), _compare(rng))
    if kind == 1:
        return _event(rng)
    if kind == 2:
        name = rng.choice(list(COMPUTED))
        value: int | float | str = "2026-03-04" if COMPUTED[name][1] == "time" else rng.choice([100, 2.5, 0])
        return Computed(name, rng.choice(COMPARISONS), value)
    return Member(rng.choice(["churned", "vip", *HOSTILE[:3]]))


def tree(rng: random.Random, depth: int = 0) -> Node:
    roll = rng.random()
    if depth >= 3 or roll < 0.4:
        return _leaf(rng)
    if roll < 0.55:
        return Not(tree(rng, depth + 1))
    items = tuple(tree(rng, depth + 1) for _ in range(rng.randrange(2, 4)))
    return And(items) if roll < 0.8 else Or(items)


def cases(count: int = 300, seed: int = 20261122) -> list[Node]:
    rng = random.Random(seed)
    return [tree(rng) for _ in range(count)]
