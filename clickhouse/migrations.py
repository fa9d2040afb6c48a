"""Numbered, append-only SQL migrations and the runner that applies them in order.

Every statement is idempotent (`IF NOT EXISTS` / `IF EXISTS`), so several processes starting at
once in server mode may run the same migration concurrently without harm; the ledger table
records what was applied (first writer wins, later rows are harmless duplicates).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from clickhouse.client import ClickHouseTarget, connect
from clickhouse.cluster import render_cluster

LEDGER = "schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (version UInt32, name String, checksum String, "
    "applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Split a file into statements on `;` at line ends, dropping `--` comment lines."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("clickhouse").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must run 1..n without gaps, found {versions}")
    return found


def migrate(target: ClickHouseTarget) -> list[int]:
    """Create the database, apply pending migrations in order; return the versions applied now."""
    bootstrap = connect(target, with_database=False)
    on_cluster = f" ON CLUSTER {target.cluster}" if target.cluster else ""
    bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {target.database}{on_cluster}")
    client = connect(target)
    ledger = render_cluster(_LEDGER_DDL, target.cluster, target.database) if target.cluster else _LEDGER_DDL
    for statement in split_statements(ledger + ";\n"):
        client.command(statement)
    done = {int(r[0]) for r in client.query(f"SELECT DISTINCT version FROM {LEDGER}").result_rows}
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements():
            rendered = (
                render_cluster(statement, target.cluster, target.database) if target.cluster else statement
            )
            for part in split_statements(rendered + ";\n"):
                client.command(part)
        client.insert(
            LEDGER,
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        applied.append(migration.version)
    return applied
