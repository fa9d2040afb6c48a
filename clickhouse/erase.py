"""Erasing rows for privacy: find the rows, then a synchronous mutation delete that names none of
the person's identifiers.

`ALTER TABLE ... DELETE` rewrites the parts that hold matching rows, so the data is physically gone
(not masked like a lightweight DELETE, whose rows stay on disk until a merge). `mutations_sync = 2`
makes the statement return only once the mutation has finished on every replica, so a receipt
that says "completed" is true when it says so. Measured on chdb/ClickHouse 26.9: both forms work on
MergeTree and ReplacingMergeTree tables; a mutation on a table without matching rows costs ~50 ms.

ClickHouse keeps the text of every mutation (`system.mutations`, `mutation_*.txt` next to the parts,
the 100 newest finished ones per table) with its query parameters substituted as literals. So the
predicate that names the person (`where`, bound parameters) is only ever run as a SELECT, which
returns a keyed digest of each matching row: SipHash-128 under a random key drawn for this call, of
every stored column of the row. The mutation then deletes `WHERE digest IN (...)`: its text holds
the random key and opaque digests of whole rows (message ids, timestamps, every value), nothing
from which an identifier can be read or confirmed by guessing it alone. Predicates must depend only
on stored columns (every forget path does), so a row with the same digest matches them too.

A digest matches a row's content, so a row changed between the SELECT and the mutation (an
aggregating merge of states, a concurrent insert) is caught by re-running the SELECT: `erase` loops
until the predicate matches nothing (at most ROUNDS times).

On a cluster (clickhouse/cluster.py) a table is a Distributed table over `<table>_local` replicas,
and a Distributed table takes no mutation: the SELECTs read through the Distributed table (every
shard), and the mutation goes to `<table>_local ON CLUSTER <cluster>` (the engine of the table, read
from system.tables, names both), so each shard deletes its own matching rows.

Every table owner's `forget(...)` goes through here, so the settings live in one place.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

MUTATION_SETTINGS = {"mutations_sync": 2}
CHUNK = 20_000  # digests per mutation (each mutation rewrites the parts it touches once)
# Digests are written into the statement (hex only, checked): as bound parameters they would travel
# in the URL, which HTTP servers cap far below 20,000 of them. The parser's limit is raised to fit.
_DIGEST_SETTINGS = {**MUTATION_SETTINGS, "max_query_size": 64 * CHUNK + 1_000_000}
_HEX = frozenset("0123456789ABCDEF")
ROUNDS = 5
_STORED = (
    "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}"
    " AND default_kind NOT IN ('ALIAS', 'EPHEMERAL') ORDER BY position"
)


_ENGINE = "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}"
_DISTRIBUTED = re.compile(r"^Distributed\(\s*'?(\w+)'?\s*,\s*'?\w+'?\s*,\s*'?(\w+)'?")


def mutated(ch: Client, table: str) -> str:
    """What an ALTER ... DELETE/UPDATE of `table` names: the table itself on one node, its local
    replicated table on every node of the cluster when it is a Distributed table."""
    rows = ch.query(_ENGINE, parameters={"t": table}).result_rows
    return mutation_target(table, str(rows[0][0]) if rows else "")


def mutation_target(table: str, engine_full: str) -> str:
    found = _DISTRIBUTED.match(engine_full)
    return f"{found.group(2)} ON CLUSTER {found.group(1)}" if found else table


@dataclass(frozen=True)
class Digest:
    """SipHash-128 under a random 128-bit key (drawn per call, never stored) of SQL expressions."""

    k0: int
    k1: int

    @classmethod
    def new(cls) -> Digest:
        return cls(secrets.randbits(64), secrets.randbits(64))

    def of(self, expression: str) -> str:
        return f"hex(sipHash128Keyed((toUInt64({self.k0}), toUInt64({self.k1})), {expression}))"

    def of_row(self, ch: Client, table: str) -> str:
        columns = [str(r[0]) for r in ch.query(_STORED, parameters={"t": table}).result_rows]
        return self.of("tuple(" + ", ".join(f"`{c}`" for c in columns) + ")")


def erase(ch: Client, table: str, where: str, parameters: dict[str, Any]) -> int:
    """Delete the rows of `table` matching `where` (bound `parameters`); returns how many there were.
    The mutation's text holds no value of `parameters` (see the module doc).

    The count includes every stored version of a versioned row (all of them are deleted)."""
    digest = Digest.new()
    row = digest.of_row(ch, table)
    select = f"SELECT {row} AS d, count() FROM {table} WHERE {where} GROUP BY d"
    removed = 0
    for _ in range(ROUNDS):
        found = ch.query(select, parameters=parameters).result_rows
        if not found:
            break
        removed += sum(int(n) for _, n in found)
        target = mutated(ch, table)
        for chunk in _chunks([str(d) for d, _ in found]):
            ch.command(
                f"ALTER TABLE {target} DELETE WHERE {row} IN {_listed(chunk)}", settings=_DIGEST_SETTINGS
            )
    return removed


def erase_plain(ch: Client, table: str, where: str, parameters: dict[str, Any]) -> int:
    """Delete the rows matching a predicate that names no person (retention by age, one request's
    old versions): the predicate itself goes into the mutation. Returns how many there were."""
    rows = ch.query(f"SELECT count() FROM {table} WHERE {where}", parameters=parameters).result_rows
    count = int(rows[0][0])
    if count:
        ch.command(
            f"ALTER TABLE {mutated(ch, table)} DELETE WHERE {where}",
            parameters=parameters,
            settings=MUTATION_SETTINGS,
        )
    return count


def redact(
    ch: Client, table: str, column: str, element: str, parameters: dict[str, Any], replacement: str | None
) -> int:
    """In the Array(String) `column`, replace each element for which `element` (SQL over `e`) is true
    by `replacement`, or drop it when None; returns how many rows changed. Like `erase`, the
    mutation names only keyed digests of the rows and of the elements."""
    digest = Digest.new()
    row = digest.of_row(ch, table)
    found = f"SELECT {row} FROM {table} WHERE arrayExists(e -> {element}, `{column}`)"
    rows = [str(r[0]) for r in ch.query(found, parameters=parameters).result_rows]
    if not rows:
        return 0
    each = f"SELECT DISTINCT {digest.of('e')} FROM {table} ARRAY JOIN `{column}` AS e WHERE {element}"
    elements = [str(r[0]) for r in ch.query(each, parameters=parameters).result_rows]
    hit = f"{digest.of('e')} IN {_listed(elements)}"
    if replacement is None:
        value = f"arrayFilter(e -> NOT ({hit}), `{column}`)"
    else:
        value = f"arrayMap(e -> if({hit}, {{r:String}}, e), `{column}`)"
    target = mutated(ch, table)
    for chunk in _chunks(rows):
        ch.command(
            f"ALTER TABLE {target} UPDATE `{column}` = {value} WHERE {row} IN {_listed(chunk)}",
            parameters={"r": replacement or ""},
            settings=_DIGEST_SETTINGS,
        )
    return len(rows)


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _listed(digests: list[str]) -> str:
    """A SQL tuple of hex digests (anything else is refused: it is inlined into the statement)."""
    if not all(d and set(d) <= _HEX for d in digests):
        raise ValueError("not a hex digest")
    return "(" + ",".join(f"'{d}'" for d in digests) + ")"


MAX_NEEDLES = 255  # ClickHouse's multiSearchAny limit per call


def mentions(column: str, needles: list[str], parameters: dict[str, Any], name: str) -> str:
    """SQL true when `column` contains any of `needles` (case-insensitive), chunked under the
    needle limit; binds the chunks into `parameters` as `{name}0`, `{name}1`…; 'false' when none."""
    chunks = [needles[i : i + MAX_NEEDLES] for i in range(0, len(needles), MAX_NEEDLES)]
    terms = []
    for n, chunk in enumerate(chunks):
        parameters[f"{name}{n}"] = chunk
        terms.append(f"multiSearchAnyCaseInsensitive({column}, {{{name}{n}:Array(String)}})")
    return "(" + " OR ".join(terms) + ")" if terms else "false"
