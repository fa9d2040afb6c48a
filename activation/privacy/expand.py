"""From the identifiers a request names to the whole stitched person (every identifier of every
profile they touch), read through the identity graph's current mapping.

Group ids never widen a person (a group is a company, not a person), so they are left out; a
requested identifier that was never stitched is kept as it is (its events and raw copies may still
be stored). Profiles merged into the person's profile (merge ledger) are included, so rows still
keyed by an absorbed profile id are found too.
"""

from __future__ import annotations

from collections.abc import Iterable

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import GROUP_TYPE, Identifier
from activation.privacy.person import PAIRS, PROFILES, Person

PROFILE_TYPE = "profile"
_PROFILES_OF = (
    f"SELECT DISTINCT profile_id FROM identity_current WHERE (identifier_type, identifier_value) IN {PAIRS}"
)
_ABSORBED = f"SELECT DISTINCT arrayJoin(merged_profile_ids) FROM merge_ledger WHERE profile_id IN {PROFILES}"
_IDENTIFIERS_OF = (
    "SELECT identifier_type, identifier_value FROM identity_current"
    f" WHERE profile_id IN {PROFILES} AND identifier_type != '{GROUP_TYPE}'"
)


def expand(ch: Client, named: Iterable[Identifier], known: Person | None = None) -> Person:
    """The person behind `named` (`{"type": "profile"}` names a profile id), widened with `known`
    (what an earlier, interrupted run already found)."""
    named = list(named)
    profiles = {i.value for i in named if i.type == PROFILE_TYPE}
    identifiers = {i for i in named if i.type not in (PROFILE_TYPE, GROUP_TYPE)}
    if known is not None:
        profiles |= known.profile_ids
        identifiers |= known.identifiers
    pairs = [(i.type, i.value) for i in sorted(identifiers)]
    if pairs:
        profiles |= {str(r[0]) for r in ch.query(_PROFILES_OF, parameters={"pairs": pairs}).result_rows}
    if profiles:
        params = {"profiles": sorted(profiles)}
        profiles |= {str(r[0]) for r in ch.query(_ABSORBED, parameters=params).result_rows if r[0]}
        rows = ch.query(_IDENTIFIERS_OF, parameters={"profiles": sorted(profiles)}).result_rows
        identifiers |= {Identifier(str(t), str(v)) for t, v in rows}
    return Person(frozenset(profiles), frozenset(identifiers))
