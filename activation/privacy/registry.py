"""Which module forgets which table: the erasure registry, and the tables marked as holding no
personal data. A meta-test lists every table of the migrated schema and fails when one is in
neither, so a new table cannot be forgotten silently.

Activation's own owners are listed here; the collector's (events, rejected_events) are added by
the composition root (magpie/server.py), since activation never imports the collector.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from activation.audiences import computation
from activation.identity import links, profiles, proposals, states
from activation.identity import store as identity_store
from activation.privacy import consent_states, forget_connections, forget_crm, requests, suppressions
from activation.privacy.person import Person
from activation.profiles_api import documents
from activation.sync import runs, state

Forget = Callable[[Client, Person], dict[str, int]]
PairForget = Callable[[Client, Collection[tuple[str, str]]], dict[str, int]]


@dataclass(frozen=True)
class ForgetPath:
    tables: tuple[str, ...]
    forget: Forget


def by_pairs(forget: PairForget) -> Forget:
    """Adapt an owner that takes plain (type, value) pairs (the collector) to the Person shape."""

    def adapted(ch: Client, person: Person) -> dict[str, int]:
        return forget(ch, [(i.type, i.value) for i in person.sorted_identifiers()])

    return adapted


ValueForget = Callable[[Collection[str]], dict[str, int]]


def by_values(forget: ValueForget) -> Forget:
    """Adapt an owner of files (not tables) that matches plain values: every identifier value and
    profile id of the person."""

    def adapted(ch: Client, person: Person) -> dict[str, int]:
        return forget(person.values() | person.profile_ids)

    return adapted


# Order matters only for sync_state: the outbound removal reads it, and runs before any of these.
ACTIVATION_PATHS: tuple[ForgetPath, ...] = (
    ForgetPath(
        ("identity_map", "identity_splits", "identity_conflicts", "merge_ledger"), identity_store.forget
    ),
    # identity_link_ids / identity_link_log (0012): the per-identifier index and insertion log of
    # identity_links, erased by the same owner
    ForgetPath(("identity_links", "identity_link_ids", "identity_link_log"), links.forget),
    ForgetPath(("identity_records", "identity_proposals"), proposals.forget),
    ForgetPath(("profiles", "profile_traits", "profile_computed_traits"), profiles.forget),
    ForgetPath(
        (states.EVENT_STATES, states.PAIR_STATES, states.TRAIT_STATES, "profile_pairs"), states.forget
    ),
    ForgetPath((consent_states.TABLE,), consent_states.forget),
    ForgetPath((documents.TABLE,), documents.forget),
    ForgetPath(("audience_snapshots", "audience_membership_changes"), computation.forget),
    ForgetPath(("sync_state",), state.forget),
    ForgetPath(("sync_dead_letters", "sync_runs"), runs.forget),
    ForgetPath(("privacy_requests",), requests.forget),
    ForgetPath(forget_crm.TABLES, forget_crm.forget),
    ForgetPath(forget_connections.TABLES, forget_connections.forget),
)

HOLDS_NO_PERSONAL_DATA: dict[str, str] = {
    "schema_migrations": "migration ledger",
    "sources": "source configuration",
    "tokens": "admin tokens (hashed secrets, names chosen by operators)",
    "destinations": "destination configuration (credentials encrypted)",
    "audiences": "audience definitions written by operators",
    "audience_runs": "per-run counts only",
    "computed_trait_definitions": "definitions written by operators",
    "identity_settings": "identity rules and job watermarks",
    "privacy_audit": "identifiers only as keyed hashes",
    "audience_freshness": "per audience: the newest event time its membership reflects, a lag",
    "crm_sources": "CRM source configuration (credentials sealed)",
    "crm_cursors": "CRM pull watermarks and positions (times, offsets, query locators, job ids)",
    "connections": "event forwarding routes: source, destination, operators' filter and mapping",
    "event_replays": "replay windows, operators' filters and counts",
    **suppressions.HOLDS_NO_PERSONAL_DATA,
}
