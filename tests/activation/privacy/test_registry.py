"""The seam that keeps erasure complete: every table of the migrated schema has exactly one forget
path or an explicit 'holds no personal data' mark."""

from __future__ import annotations

from pathlib import Path

from clickhouse_connect.driver.client import Client

from activation.privacy.registry import HOLDS_NO_PERSONAL_DATA
from magpie.server import privacy_wiring
from magpie.settings import Settings


def test_every_table_has_a_forget_path_or_a_no_personal_data_mark(ch: Client) -> None:
    rows = ch.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'"
    ).result_rows
    tables = {str(r[0]) for r in rows}
    wiring = privacy_wiring(Settings(data_dir=Path("unused")))  # as the composition root wires it
    forgotten = [t for p in wiring.paths for t in p.tables]
    assert len(forgotten) == len(set(forgotten)), "one owner per table"
    assert not set(forgotten) & set(HOLDS_NO_PERSONAL_DATA), "a table is either forgotten or marked"
    unaccounted = tables - set(forgotten) - set(HOLDS_NO_PERSONAL_DATA)
    assert unaccounted == set(), (
        f"tables without a forget path or a no-personal-data mark: {sorted(unaccounted)}"
    )
    assert {"events", "rejected_events", "identity_map", "sync_state"} <= set(forgotten)
