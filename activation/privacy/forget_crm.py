"""Forgetting a person in the CRM tables (migration 0007, activation/crm/): the trait values each
CRM destination confirmed for their profiles, their labels in pulled deals, and pull-run messages
that quote one of their identifiers (privacy, SPEC §9).

Lives here rather than in activation/crm/ so the registry owns one forget path per table while the
CRM code evolves; it reads only the columns of 0007.

- `crm_trait_state` (destination_id, profile_id, field, value): rows of the person's profiles go.
- `crm_objects` (a deal with the `ext:<type>:<id>` labels of the people and companies it is
  associated with): the person's labels are dropped from `targets`; the deal itself (amount, stage)
  is the company's record and stays.
- `crm_pull_runs.messages`: a message quoting one of the person's values becomes '[erased]'.
- `crm_sources` (configuration, sealed credentials) and `crm_cursors` (pull watermarks and
  positions: times, offsets, query locators, job ids) hold no personal data: see the registry.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from activation.privacy.person import PROFILES, Person
from clickhouse.erase import erase, mentions, redact

TABLES = ("crm_trait_state", "crm_objects", "crm_pull_runs")


def labels(person: Person) -> list[str]:
    """The person's external CRM ids in the label form deals use: `ext:hubspot_contact_id:123`."""
    return sorted(f"{i.type}:{i.value}" for i in person.identifiers if i.type.startswith("ext:"))


def forget(ch: Client, person: Person) -> dict[str, int]:
    params: dict[str, Any] = {**person.params(), "labels": labels(person)}
    states = erase(ch, "crm_trait_state", f"profile_id IN {PROFILES}", params)
    deals = redact(ch, "crm_objects", "targets", "e IN {labels:Array(String)}", params, None)
    said = mentions("e", params["values"], params, "v")
    runs = redact(ch, "crm_pull_runs", "messages", said, params, "[erased]")
    return {"crm_trait_state": states, "crm_objects": deals, "crm_pull_runs": runs}
