"""Identifier → profile: the complete profile an identifier belongs to now.

"Complete" means the profile has its `profiles` row (written after its traits): while a stitch moves
the identifier to a new profile, the old one is served. The query hits identity_map's primary key.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier

# The newest mapping of {t:String}/{v:String} to a live profile, unless the identifier's newest
# mapping is a deletion; one row: the profile id, or '' when there is none.
PROFILE_OF = """
SELECT if(argMax(m.deleted, m.version) = 0, argMax(m.profile_id, m.version), '')
FROM (SELECT profile_id, version, deleted FROM identity_map
      WHERE identifier_type = {t:String} AND identifier_value = {v:String}) AS m
INNER JOIN (SELECT profile_id FROM profiles
            WHERE profile_id IN (SELECT profile_id FROM identity_map
                                 WHERE identifier_type = {t:String} AND identifier_value = {v:String})
            GROUP BY profile_id HAVING argMax(deleted, version) = 0) AS live ON live.profile_id = m.profile_id
CROSS JOIN (SELECT argMax(deleted, version) AS d FROM identity_map
            WHERE identifier_type = {t:String} AND identifier_value = {v:String}) AS newest
WHERE newest.d = 0
"""


def lookup(ch: Client, identifier: Identifier) -> str:
    """The complete profile an identifier belongs to, or '' (unknown, deleted, not yet written)."""
    rows = ch.query(PROFILE_OF, parameters={"t": identifier.type, "v": identifier.value}).result_rows
    return str(rows[0][0]) if rows and rows[0][0] else ""
