"""Identifier → profile: the complete profile an identifier belongs to now.

"Complete" means the profile has its `profiles` row (written after its traits): while a stitch moves
the identifier to a new profile, the old one is served. The query hits identity_map's primary key.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier

# The newest mapping of {t:String}/{v:String} to a live profile, unless the identifier's newest
# mapping is a deletion; one row: the profile id, or '' when there is none. The identifier's rows are
# read twice by primary key (its mappings, and the candidate profiles checked in `profiles`).
PROFILE_OF = """
SELECT if(argMax(deleted, version) = 0 AND argMaxIf(deleted, version, live) = 0,
          argMaxIf(profile_id, version, live), '')
FROM (SELECT profile_id, version, deleted, profile_id IN (
          SELECT profile_id FROM profiles
          WHERE profile_id IN (SELECT profile_id FROM identity_map
                               WHERE identifier_type = {t:String} AND identifier_value = {v:String})
          GROUP BY profile_id HAVING argMax(deleted, version) = 0) AS live
      FROM identity_map WHERE identifier_type = {t:String} AND identifier_value = {v:String})
"""
# point reads: one thread (the Profile API's uncached reads leave the other cores to cache hits)
_SETTINGS = {"max_threads": 1}


def lookup(ch: Client, identifier: Identifier) -> str:
    """The complete profile an identifier belongs to, or '' (unknown, deleted, not yet written)."""
    params = {"t": identifier.type, "v": identifier.value}
    rows = ch.query(PROFILE_OF, parameters=params, settings=_SETTINGS).result_rows
    return str(rows[0][0]) if rows and rows[0][0] else ""
