"""Render the single-node DDL of the migrations as its cluster variant.

A `CREATE TABLE t (...) ENGINE = XMergeTree...` becomes a replicated local table `t_local` on
every node plus a `Distributed` table `t` over it; `ALTER TABLE t` targets `t_local`. All
statements get `ON CLUSTER`. Reads and writes keep using the plain table names.

The Distributed table shards by a hash of the table's sorting key: every version of a row lands on
the same shard, so ReplacingMergeTree's FINAL and argMax-by-version reads stay right (with `rand()`
two versions of one row could sit on two shards and both survive FINAL). Inserts through a
Distributed table are synchronous (`distributed_foreground_insert`, set by clickhouse/client.py for
cluster targets), so an acknowledged insert is on its shard, not in a local queue.
"""

from __future__ import annotations

import re

_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*(.*)$", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree(\(([^)]*)\))?")
_ALTER = re.compile(r"^ALTER TABLE (\w+)\s+(.*)$", re.S)
_COLUMN_CHANGE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b", re.I)
_VIEW = re.compile(r"^CREATE (MATERIALIZED )?VIEW IF NOT EXISTS (\w+)\s+(.*)$", re.S)


def render_cluster(statement: str, cluster: str, database: str) -> str:
    """Return the statement(s) for a cluster named `cluster`; several are joined with ';\\n'."""
    create = _CREATE.match(statement)
    if create:
        return _render_create(create.group(1), create.group(2), cluster, database)
    alter = _ALTER.match(statement)
    if alter:
        table, change = alter.group(1), alter.group(2)
        if change.startswith("MODIFY QUERY"):
            return f"ALTER TABLE {table} ON CLUSTER {cluster} {change}"  # a view: no local table
        local = f"ALTER TABLE {table}_local ON CLUSTER {cluster} {change}"
        if not _COLUMN_CHANGE.match(change):
            return local  # indexes, TTL, projections: the local tables only
        return f"{local};\nALTER TABLE {table} ON CLUSTER {cluster} {change}"  # the Distributed table too
    view = _VIEW.match(statement)
    if view:
        kind = "MATERIALIZED VIEW" if view.group(1) else "VIEW"
        return f"CREATE {kind} IF NOT EXISTS {view.group(2)} ON CLUSTER {cluster} {view.group(3)}"
    raise ValueError(f"no cluster rendering for statement: {statement[:60]!r}")


def _render_create(table: str, body: str, cluster: str, database: str) -> str:
    def replicated(match: re.Match[str]) -> str:
        flavour, args = match.group(1), (match.group(3) or "").strip()
        path = f"'/clickhouse/tables/{{shard}}/{database}/{table}_local', '{{replica}}'"
        return f"ENGINE = Replicated{flavour}MergeTree({path}{', ' + args if args else ''})"

    local_body, count = _ENGINE.subn(replicated, body, count=1)
    if count != 1:
        raise ValueError(f"table {table} has no MergeTree engine to replicate")
    local = f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER {cluster} {local_body}"
    distributed = (
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {table}_local "
        f"ENGINE = Distributed({cluster}, {database}, {table}_local, {sharding_key(body)})"
    )
    return f"{local};\n{distributed}"


def sharding_key(body: str) -> str:
    """`cityHash64(<sorting key>)` from the table's ORDER BY (rand() for a table without one)."""
    at = re.search(r"\bORDER BY\s+", body)
    if at is None:
        return "rand()"
    rest = body[at.end() :]
    if not rest.startswith("("):
        key = re.match(r"[\w.]+", rest)
        return f"cityHash64({key.group(0)})" if key else "rand()"
    depth = 0
    for index, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            inner = rest[1:index].strip()
            return f"cityHash64({inner})" if inner else "rand()"
    raise ValueError("unbalanced ORDER BY")
