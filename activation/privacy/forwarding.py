"""The suppression check of event forwarding: stored events of a suppressed person are never forwarded.

The collector drops a suppressed person's events at the door; this covers events stored before the
suppression (a backlog in a destination's queue, a replay of an old window). It hashes the identifiers
each row carries exactly as suppressions.py does and asks the suppressions table once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import _hashes, _present
from activation.services import Services

_ID_COLUMNS = (("user_id", "user_id"), ("anonymous_id", "anonymous_id"), ("previous_id", "user_id"))
_TRAIT_KEYS = (("email", "email"), ("phone", "phone"))


def row_identifiers(row: dict[str, Any]) -> Iterator[Identifier]:
    for column, kind in _ID_COLUMNS:
        if row.get(column):
            yield Identifier(kind, str(row[column]))
    traits = row.get("traits") or "{}"
    try:
        parsed = orjson.loads(traits) if isinstance(traits, str | bytes) else traits
    except orjson.JSONDecodeError:
        return
    if isinstance(parsed, dict):
        for key, kind in _TRAIT_KEYS:
            if isinstance(parsed.get(key), str):
                yield Identifier(kind, parsed[key])


async def suppressed_events(services: Services, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Message ids of the rows carrying any suppressed identifier."""
    per_row = {str(r["message_id"]): _hashes(services, row_identifiers(r)) for r in rows}
    every = {h for hashes in per_row.values() for h in hashes}
    if not every:
        return set()
    present = await _present(services, every)
    return {message_id for message_id, hashes in per_row.items() if present & hashes.keys()}
