"""Forgetting a person in the event-forwarding tables (migration 0008, activation/connections/):
the events a destination refused for good (privacy, SPEC §9).

Lives here rather than in activation/connections/ so the registry owns one forget path per table
while that code evolves; it reads only the columns of 0008.

- `event_dead_letters`: `person` is the id the event was routed under (user id, else anonymous
  id), `item` the queued outbound event (JSON). A letter goes when its person is one of the
  person's ids or its item quotes one of their values as a JSON string (an email in properties).
- `connections` (source → destination, filter and mapping written by operators) and
  `event_replays` (a time window, an operator's filter, counts) hold no personal data: see the
  registry. The Redis forwarding queues are scrubbed with the rest of the keyspace.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from activation.privacy.person import VALUES, Person
from clickhouse.erase import erase, mentions

TABLES = ("event_dead_letters",)


def forget(ch: Client, person: Person) -> dict[str, int]:
    params: dict[str, Any] = person.params()
    quoted = mentions("item", sorted(f'"{v}"' for v in person.values()), params, "q")
    where = f"person IN {VALUES} OR {quoted}"
    return {"event_dead_letters": erase(ch, "event_dead_letters", where, params)}
