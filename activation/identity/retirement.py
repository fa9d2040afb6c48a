"""Records that leave their source (a CRM deletion or merge): retired, and their profiles rebuilt.

Retiring writes the record again at a higher version with `deleted = 1`, so its traits drop out of
the profile and a profile known only from such records loses its `profiles` row (the Profile API
stops answering for it). The record's identifiers stay linked: the link is evidence that those
identifiers belonged together. A CRM merge also links the loser's external id to the survivor's, so
whatever reached the profile through the loser now reaches the survivor's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from clickhouse_connect.driver.client import Client

from activation.identity import links as link_store
from activation.identity import store
from activation.identity.graph import Link
from activation.identity.identifiers import Identifier
from activation.identity.stitching import restitch_identifiers

_COLS = ["record_id", "batch_id", "ids", "traits", "imported_at", "version", "deleted"]
_LIVE = (
    "SELECT record_id, batch_id, ids, traits, imported_at FROM identity_records FINAL"
    " WHERE record_id IN {r:Array(String)} AND deleted = 0"
)


def retire_records(ch: Client, record_ids: Sequence[str], now: datetime) -> set[str]:
    """Mark the live ones of these records deleted and rebuild their profiles; returns those retired."""
    live = ch.query(_LIVE, parameters={"r": list(record_ids)}).result_rows if record_ids else []
    if not live:
        return set()
    version = store.run_version() + 1
    ch.insert("identity_records", [[*row[:5], version, 1] for row in live], column_names=_COLS)
    seeds = {Identifier(*pair) for row in live for pair in row[2]}
    restitch_identifiers(ch, seeds, set(), now)
    return {str(row[0]) for row in live}


def link_merged(
    ch: Client, pairs: Iterable[tuple[Identifier, Identifier]], source_id: str, now: datetime
) -> None:
    """Link each (loser, survivor) identifier pair, then restitch around them."""
    links = [
        Link(tuple(sorted(pair)), now, f"merge:{pair[0].label()}", source_id, "import") for pair in pairs
    ]
    if links:
        link_store.insert_links(ch, links)
        restitch_identifiers(ch, {i for link in links for i in link.ids}, set(), now)
