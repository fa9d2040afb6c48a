"""Consent: a profile's latest `context.consent.categoryPreferences`, and who a destination may receive.

A consent signal is an event's `consent` column (the collector copies categoryPreferences into it)
or a `consent` trait (set by identify or imports); the newest signal wins. The Profile API shows it
under "consent" (`latest_consent`). A destination names the category it needs (`consent_category`)
and how a profile without a recorded preference is treated (`config.consent_default`):

| category | consent_default | sent                                                           |
|----------|-----------------|----------------------------------------------------------------|
| none     | allow (default) | every member                                                   |
| none     | deny            | members with any consent recorded                              |
| "x"      | deny (default)  | members whose newest signal grants "x"                         |
| "x"      | allow           | members except those whose newest signal naming "x" refuses it |

Withdrawing consent makes the member undesired, so the next sync removes them (sync/state.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.identity.resolve import members_sql, resolved
from activation.privacy.consent_states import newest_of_members_sql

CONSENT_DEFAULTS = ("allow", "deny")
# Each pair's newest consent (0013 consent_states: bounded by people, not history), resolved to its
# profile by identity.resolve's one rule; then the profiles' explicitly set `consent` trait.
_PAIR_SIGNALS = resolved(
    "SELECT user_id, anonymous_id, argMaxMerge(prefs) AS prefs, max(at) AS at FROM consent_states"
    " GROUP BY user_id, anonymous_id"
)
_SIGNALS = (
    "SELECT profile_id, prefs, at FROM (" + _PAIR_SIGNALS + ")"
    " WHERE profile_id IN ({members})"
    " UNION ALL"
    " SELECT profile_id, value AS prefs, updated_at AS at FROM profile_traits FINAL"
    " WHERE trait = 'consent' AND deleted = 0 AND profile_id IN ({members})"
)
_GRANTED = (
    "SELECT profile_id FROM ({signals}) GROUP BY profile_id"
    " HAVING argMax(JSONExtractBool(prefs, {{cat:String}}), at) = 1"
)
_REFUSED = (
    "SELECT profile_id FROM ({signals}) WHERE JSONHas(prefs, {{cat:String}}) GROUP BY profile_id"
    " HAVING argMax(JSONExtractBool(prefs, {{cat:String}}), at) = 0"
)
_RECORDED = "SELECT DISTINCT profile_id FROM ({signals})"


def consent_default(config: Mapping[str, object], category: str) -> str:
    """`allow` or `deny`: the config's `consent_default`, else deny when a category is named."""
    value = config.get("consent_default")
    if value in CONSENT_DEFAULTS:
        return str(value)
    return "deny" if category else "allow"


def config_errors(config: Mapping[str, object]) -> dict[str, str]:
    value = config.get("consent_default")
    if value is None or value in CONSENT_DEFAULTS:
        return {}
    return {"config.consent_default": "must be allow or deny"}


def desired_sql(members_sql: str, category: str, default: str) -> str:
    """Profiles of `members_sql` a destination may hold (parameters: whatever members_sql needs and
    `cat`); the table above."""
    signals = _SIGNALS.replace("{members}", members_sql)
    if category and default == "allow":
        refused = _REFUSED.format(signals=signals)
        return f"SELECT profile_id FROM ({members_sql}) WHERE profile_id NOT IN ({refused})"
    if category:
        return _GRANTED.format(signals=signals)
    if default == "deny":
        return _RECORDED.format(signals=signals)
    return members_sql


def latest_sql(profile: str, members: str = "") -> str:
    """(prefs, at) of the newest consent signal of `profile` (an SQL expression: a bound parameter, or
    an alias the caller's query defines). Events count through the consent states of the profile's
    identifiers (privacy.consent_states, by primary key), each pair kept by identity.resolve's rule.
    `members`: the profile's current identifiers (identity.resolve.members_sql) when the caller
    already binds them (the Profile API document), else read here."""
    pairs = newest_of_members_sql(members or f"({members_sql(profile)})")
    return (
        f"SELECT prefs, at FROM (SELECT prefs, at FROM ({pairs})"
        " UNION ALL"
        " SELECT value AS prefs, updated_at AS at FROM profile_traits FINAL"
        f" WHERE profile_id = {profile} AND trait = 'consent' AND deleted = 0"
        ") ORDER BY at DESC LIMIT 1"
    )


def latest_consent(ch: Client, profile_id: str) -> dict[str, Any] | None:
    """{"categoryPreferences": {...}, "updated_at": ...} of the newest signal, None without one."""
    rows = ch.query(latest_sql("{p:String}"), parameters={"p": profile_id}).result_rows
    return consent_of(*rows[0]) if rows else None


def consent_of(raw: str, at: Any) -> dict[str, Any] | None:
    """The API shape of one signal; None when its preferences are not a JSON object."""
    try:
        preferences = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(preferences, dict):
        return None
    return {"categoryPreferences": preferences, "updated_at": at}
