"""An audience's current members, defined once: a profile is a member when its latest change in
`audience_membership_changes` is 'entered'. Every reader of membership (runs, streaming micro-batches,
nested-audience conditions, syncs, CRM trait sync, the Profile API) builds its SQL from these.

Arguments are SQL text from the caller's own fragments (bound parameters such as `{aid:String}`,
subqueries, aliases), never values.
"""

from __future__ import annotations

_TABLE = "audience_membership_changes"
_IS_IN = "argMax(change, at) = 'entered'"


def members_sql(audience: str = "{aid:String}", where: str = "") -> str:
    """SELECT profile_id of the current members of `audience`; `where` narrows the changes read
    (e.g. " AND profile_id IN {scope:Array(String)}", or " AND at <= {until:...}" for a past time)."""
    return (
        f"SELECT profile_id FROM {_TABLE} WHERE audience_id = {audience}{where}"
        f" GROUP BY profile_id HAVING {_IS_IN}"
    )


def memberships_sql(profiles: str) -> str:
    """SELECT audience_id, profile_id, since: every audience the profiles of `profiles` (an SQL set,
    e.g. `{p:Array(String)}` or `[pid]`) are in now, since the change that put them there."""
    return (
        f"SELECT audience_id, profile_id, max(at) AS since FROM {_TABLE} WHERE profile_id IN {profiles}"
        f" GROUP BY audience_id, profile_id HAVING {_IS_IN}"
    )


def changed_at_sql(audience: str = "{aid:String}", at: str = "{at:DateTime64(3, 'UTC')}") -> str:
    """SELECT profile_id of the profiles that entered or left `audience` in the run at `at`."""
    return f"SELECT DISTINCT profile_id FROM {_TABLE} WHERE audience_id = {audience} AND at = {at}"
