"""Profile documents: built for many profiles in one query, stored per identifier (migration 0018)
when profiles change, and served by one primary-key read when the Redis cache misses.

Built: traits, computed traits, built-in counters, identities (identity.store.MEMBERS_SQL) and
audiences (audiences.current) of up to CHUNK profiles as the branches of one UNION ALL, each a
primary-key read of those profiles' rows, then their consent (privacy.consent_states) by the
identifiers found — so a stitch tick that
touched 1,000 profiles pays a few queries, not the ~8 branches per profile a per-profile read costs
(chdb charges ~4-8 ms per branch: an uncached per-profile document was ~70 ms of ClickHouse CPU).

Stored: one row per identifier of the profile, each with the whole document, so a cache miss needs
no lookup first. The stored form names each audience by id only; names and keys are added when it
is served (AudienceNames), so renaming or deleting an audience never leaves documents stale.

Served only when (profiles_api.routes falls back to building the document now otherwise): the
row's generation is the cache's (a full restitch moves to a new one), and the document still lists
the identifier asked for (an identifier moved to another profile is rewritten with it; one that
left its profile is not listed by that profile's new document).

Writers: `DocumentWriter` is the `Services.profiles_changed` hook the composition root wires; the
stitch job calls it with the profiles and identifiers a tick changed, the audience jobs with the
profiles that entered or left an audience.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences.current import memberships_sql
from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.store import MEMBERS_SQL
from activation.locks import LockNotAcquired, held
from activation.privacy.consent import consent_of
from activation.privacy.consent_states import newest_by_profile_sql
from activation.privacy.person import PROFILES, VALUES
from activation.privacy.person import Person as PrivacyPerson
from activation.services import Enqueue
from activation.services import of as services_of
from clickhouse.client import Strings
from clickhouse.erase import erase

TABLE = "profile_documents"
COLUMNS = ["identifier_type", "identifier_value", "version", "generation", "profile_id", "document"]
CHUNK = 500  # profiles per build query (the ids are bound as one Array parameter)
_P = "{p:Array(String)}"
_NO_TIME = "toDateTime64(0, 3, 'UTC')"
# every branch: kind, profile id, four strings, one time
_BRANCHES = (
    # the time column: the `consent` trait is a consent signal too (_consent)
    "SELECT 't', profile_id, trait, argMax(value, version), argMax(source_id, version),"
    " toString(argMax(updated_at, version)), argMax(updated_at, version) FROM profile_traits"
    f" WHERE profile_id IN {_P} GROUP BY profile_id, trait HAVING argMax(deleted, version) = 0",
    f"SELECT 'c', profile_id, name, toString(argMax(value, version)), '', '', {_NO_TIME}"
    f" FROM profile_computed_traits WHERE profile_id IN {_P}"
    " GROUP BY profile_id, name HAVING argMax(deleted, version) = 0",
    "SELECT 'p', profile_id, toJSONString(map('first_seen', toString(argMax(first_seen, version)),"
    " 'last_seen', toString(argMax(last_seen, version)),"
    " 'event_count', toString(argMax(event_count, version)),"
    " 'session_count', toString(argMax(session_count, version)),"
    " 'lifetime_revenue', toString(argMax(lifetime_revenue, version)),"
    f" 'is_bot', toString(argMax(is_bot, version)))), '', '', '', {_NO_TIME}"
    f" FROM profiles WHERE profile_id IN {_P} GROUP BY profile_id HAVING argMax(deleted, version) = 0",
    f"SELECT 'm', pid, toString(identifier_type), identifier_value, '', '', {_NO_TIME} FROM ({MEMBERS_SQL})",
    f"SELECT 'a', profile_id, audience_id, '', '', '', since FROM ({memberships_sql(_P)})",
)
_BUILD = " UNION ALL ".join(f"SELECT * FROM ({sql})" for sql in _BRANCHES)
# The consent branch, second, with the members the first query found bound as arrays: with
# MEMBERS_SQL inside it, ClickHouse evaluated the mapping four more times (90 of the 170 ms a build of
# 500 profiles took on the bench store; 94 ms of a one-profile build).
_BOUND_MEMBERS = (
    "SELECT z.1 AS identifier_type, z.2 AS identifier_value, z.3 AS pid FROM (SELECT"
    " arrayJoin(arrayZip({mt:Array(String)}, {mv:Array(String)}, {mp:Array(String)})) AS z)"
)
_CONSENT = f"SELECT 'k', pid, prefs, '', '', '', at FROM ({newest_by_profile_sql(_BOUND_MEMBERS)})"
# Which of the members have any consent state (the states are kept by user_id and anonymous_id only):
# the consent query above runs only for the profiles that do. Streaming bench store: most profiles
# have none, and binding every member three times made consent ~70 % of a build (85 of 120 ms for
# 500 profiles, consent_states empty).
_STATE_TYPES = ("user_id", "anonymous_id")
_CHECK_ABOVE = 64  # identifiers: fewer go straight to the consent query
_WITH_STATES = (
    "SELECT DISTINCT identifier_value FROM consent_states"
    " WHERE identifier_type IN ('user_id', 'anonymous_id') AND identifier_value IN {v:Array(String)}"
)
_STORED = (
    "SELECT argMax(document, version), argMax(generation, version) FROM profile_documents"
    " WHERE identifier_type = {t:String} AND identifier_value = {v:String}"
)
_LIVE_PAGE = (
    "SELECT profile_id FROM profiles WHERE profile_id > {after:String} GROUP BY profile_id"
    " HAVING argMax(deleted, version) = 0 ORDER BY profile_id LIMIT {n:UInt32}"
)
REBUILD_JOB = "rebuild_profile_documents"
_ANY_BUILT = "SELECT 1 FROM profile_documents WHERE generation = {g:UInt64} AND document != '' LIMIT 1"
LOCK_KEY = "magpie:profiles:documents:lock"  # document writes, and erasures (privacy.deletion)
LOCK_WAIT_S = 120
_NAMES = "SELECT id, key, name FROM audiences FINAL WHERE deleted = 0"
# batched primary-key reads: one thread, the cores stay free for cache hits. The point read (`stored`)
# reads one granule on one thread anyway and sends no setting: a store handle last used with other
# settings is switched back and forth by `SET` statements otherwise (profile bench, one session: p99
# 16.0-17.4 ms in 3 runs without, 16.2-20.5 ms in 5 runs with: within noise).
_SETTINGS = {"max_threads": 1}
Document = dict[str, Any]


def build(ch: Client, profile_ids: Iterable[str]) -> dict[str, Document]:
    """The stored form of each live, complete profile's document (a profile without its `profiles`
    row — deleted, merged away, not yet written — has none)."""
    out: dict[str, Document] = {}
    for chunk in _chunks(sorted(set(profile_ids))):
        rows = list(ch.query(_BUILD, parameters={"p": Strings(chunk)}, settings=_SETTINGS).result_rows)
        members = [(str(r[2]), str(r[3]), str(r[1])) for r in rows if r[0] == "m"]
        rows += _consent_rows(ch, members)
        by_profile: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        for kind, pid, *rest in rows:
            by_profile.setdefault(str(pid), {}).setdefault(kind, []).append(tuple(rest))
        out.update({pid: _assemble(pid, r) for pid, r in by_profile.items() if r.get("p")})
    return out


def _consent_rows(ch: Client, members: list[tuple[str, str, str]]) -> list[tuple[Any, ...]]:
    """The 'k' rows of the profiles among `members` (type, value, profile id) with a consent state."""
    candidates = {v for t, v, _ in members if t in _STATE_TYPES}
    if not candidates:
        return []
    with_states = candidates
    if len(candidates) > _CHECK_ABOVE:  # a few members cost less than the extra query
        bound = {"v": Strings(sorted(candidates))}
        found = ch.query(_WITH_STATES, parameters=bound, settings=_SETTINGS).result_rows
        with_states = {str(r[0]) for r in found}
    pids = {p for t, v, p in members if t in _STATE_TYPES and v in with_states}
    if not pids:
        return []
    wanted = [m for m in members if m[2] in pids]
    columns = zip(*wanted, strict=True)
    bound = {name: Strings(column) for name, column in zip(("mt", "mv", "mp"), columns, strict=True)}
    return [tuple(r) for r in ch.query(_CONSENT, parameters=bound, settings=_SETTINGS).result_rows]


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def write(
    ch: Client, documents: dict[str, Document], version: int, generation: int, gone: Iterable[Identifier] = ()
) -> int:
    """Store each document under every identifier it lists; `gone`: identifiers no document lists
    any more get an empty row (not served: the request finds out now). Rows written."""
    rows = [
        [i["type"], i["value"], version, generation, pid, body]
        for pid, doc in documents.items()
        for body in (orjson.dumps(doc).decode(),)
        for i in doc["identities"]
    ]
    listed = {(row[0], row[1]) for row in rows}
    rows += [[t, v, version, generation, "", ""] for t, v in set(gone) if (t, v) not in listed]
    for start in range(0, len(rows), 10_000):
        ch.insert(TABLE, rows[start : start + 10_000], column_names=COLUMNS)
    return len(rows)


def refresh(
    ch: Client, profile_ids: Collection[str], generation: int, identifiers: Iterable[Identifier] = ()
) -> int:
    """Rebuild and store the documents of `profile_ids` (and clear the changed `identifiers` that
    none of them lists). The version is taken before anything is read: of two refreshes of one
    profile, the one that read later wins."""
    version = time.time_ns()
    return write(ch, build(ch, profile_ids), version, generation, identifiers)


def stored(ch: Client, identifier: Identifier, generation: int) -> Document | None:
    """The stored document of the identifier's profile, when it may be served (module docstring)."""
    params = {"t": identifier.type, "v": identifier.value}
    rows = ch.query(_STORED, parameters=params).result_rows
    body, row_generation = rows[0] if rows else ("", 0)
    if not body or int(row_generation) != generation:
        return None
    document: Document = orjson.loads(body)
    listed = any(
        i["type"] == identifier.type and i["value"] == identifier.value for i in document["identities"]
    )
    return document if listed else None


def served(document: Document, names: dict[str, tuple[str, str]]) -> Document:
    """The document as the API returns it: each live audience with its key and name, by key."""
    audiences = [
        {"id": a["id"], "key": names[a["id"]][0], "name": names[a["id"]][1], "entered_at": a["entered_at"]}
        for a in document["audiences"]
        if a["id"] in names
    ]
    return {**document, "audiences": sorted(audiences, key=lambda a: str(a["key"]))}


def audience_names(ch: Client) -> dict[str, tuple[str, str]]:
    """Live audiences: id -> (key, name)."""
    return {str(i): (str(k), str(n)) for i, k, n in ch.query(_NAMES).result_rows}


class AudienceNames:
    """audience_names, kept for `max_age_s` and reloaded early (at most every `min_age_s`) when a
    document names an audience it does not know (just created). Thread-safe: fills run in threads."""

    def __init__(self, max_age_s: float = 5.0, min_age_s: float = 0.5) -> None:
        self.max_age_s, self.min_age_s = max_age_s, min_age_s
        self._names: dict[str, tuple[str, str]] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def get(self, ch: Client, wanted: Iterable[str] = ()) -> dict[str, tuple[str, str]]:
        with self._lock:
            age = time.monotonic() - self._loaded
            unknown = any(a not in self._names for a in wanted)
            if age > self.max_age_s or (unknown and age > self.min_age_s):
                self._names, self._loaded = audience_names(ch), time.monotonic()
            return self._names


class DocumentWriter:
    """`Services.profiles_changed`: refresh the documents of changed profiles, then drop their cached
    copies (the next request reads the new document). Generation: the cache's, read before building.
    Everything changed (a full restitch moved to a new generation): the rebuild job, once per
    generation, rewrites every live profile's document in it meanwhile misses build them now."""

    def __init__(self, ch: Client, cache: ProfileCache, enqueue: Enqueue | None = None) -> None:
        self.ch, self.cache, self.enqueue = ch, cache, enqueue

    async def __call__(
        self, profile_ids: Collection[str], identifiers: Collection[Identifier] = (), everything: bool = False
    ) -> None:
        if everything:
            await self._rebuild()
        if not profile_ids and not identifiers:
            return
        # a privacy deletion holds this lock while it erases: a refresh that read the person's rows
        # before the erasure cannot write them back after it
        async with held(self.cache.redis, LOCK_KEY, wait_s=LOCK_WAIT_S) as acquired:
            if not acquired:
                raise LockNotAcquired(f"profile documents stayed locked for {LOCK_WAIT_S} s")
            generation = await self.cache.generation()
            try:
                await asyncio.to_thread(refresh, self.ch, profile_ids, generation, identifiers)
            except Exception:
                # documents of these profiles may be stale now: stop serving every stored one (a new
                # generation) and rebuild them all, rather than serve a stale one until its next change
                await self.cache.invalidate_all()
                await self._rebuild()
                raise
        await self.cache.invalidate(profile_ids, identifiers)

    async def _rebuild(self) -> None:
        if self.enqueue is not None:
            generation = await self.cache.generation()
            await self.enqueue(REBUILD_JOB, job_id=f"{REBUILD_JOB}:{generation}")


async def rebuild_profile_documents(ctx: dict[str, Any]) -> dict[str, Any]:
    """The job: every live profile's document stored again in the cache's current generation, by
    pages of CHUNK profiles in id order; stops when the generation moves on (its own job follows)."""
    services = services_of(ctx)
    cache = ProfileCache(services.redis)
    generation, after, profiles, rows = await cache.generation(), "", 0, 0
    while True:
        if await cache.generation() != generation:
            return {"generation": generation, "stopped": "a newer generation", "profiles": profiles}
        page = await asyncio.to_thread(_live_page, services.ch, after)
        if not page:
            return {"generation": generation, "profiles": profiles, "rows": rows}
        async with held(services.redis, LOCK_KEY, wait_s=LOCK_WAIT_S) as acquired:  # as DocumentWriter
            if not acquired:
                raise LockNotAcquired(f"profile documents stayed locked for {LOCK_WAIT_S} s")
            rows += await asyncio.to_thread(refresh, services.ch, page, generation)
        profiles, after = profiles + len(page), page[-1]


async def ensure_profile_documents(ctx: dict[str, Any]) -> dict[str, Any]:
    """The job (at worker start, then hourly): when there are live profiles but no document of the
    cache's generation — an upgrade to 0018, a Redis that lost its generation — queue the rebuild."""
    services = services_of(ctx)
    generation = await ProfileCache(services.redis).generation()
    missing = await asyncio.to_thread(_none_built, services.ch, generation)
    if missing:
        await services.enqueue(REBUILD_JOB, job_id=f"{REBUILD_JOB}:{generation}")
    return {"generation": generation, "rebuild": missing}


def _none_built(ch: Client, generation: int) -> bool:
    built = ch.query(_ANY_BUILT, parameters={"g": generation}).result_rows
    return not built and bool(ch.query("SELECT 1 FROM profiles LIMIT 1").result_rows)


def _live_page(ch: Client, after: str) -> list[str]:
    params = {"after": after, "n": CHUNK}
    return [str(r[0]) for r in ch.query(_LIVE_PAGE, parameters=params, settings=_SETTINGS).result_rows]


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase every stored document of the person's profiles or naming their identifiers."""
    where = f"identifier_value IN {VALUES} OR profile_id IN {PROFILES}"
    return {TABLE: erase(ch, TABLE, where, person.params())}


def _assemble(profile_id: str, rows: dict[str, list[tuple[Any, ...]]]) -> Document:
    traits = {
        name: {"value": orjson.loads(value), "source_id": source, "updated_at": updated}
        for name, value, source, updated, _ in rows.get("t", [])
    }
    computed: dict[str, Any] = {name: float(value) for name, value, *_ in rows.get("c", [])}
    for builtin, *_ in rows.get("p", []):
        computed.update(_typed(orjson.loads(builtin)))
    identities = sorted((t, v) for t, v, *_ in rows.get("m", []))
    audiences = [{"id": aid, "entered_at": since} for aid, _, _, _, since in rows.get("a", [])]
    document = {
        "profile_id": profile_id,
        "traits": traits,
        "computed_traits": computed,
        "identities": [{"type": t, "value": v} for t, v in identities],
        "audiences": audiences,
        "consent": _consent(rows),
    }
    stored: Document = orjson.loads(orjson.dumps(document))  # the stored form: times as the API writes them
    return stored


def _consent(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any] | None:
    """The newest consent signal (privacy.consent.latest_sql's rule): the newest of the pairs' events
    and the `consent` trait; on equal times the events' one."""
    signals = [(at, prefs) for prefs, _, _, _, at in rows.get("k", [])]
    signals += [(at, value) for name, value, _, _, at in rows.get("t", []) if name == "consent"]
    if not signals:
        return None
    at, prefs = max(signals, key=lambda signal: signal[0])
    return consent_of(prefs, at)


def _typed(builtin: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: builtin[k] for k in ("first_seen", "last_seen")}
    out.update({k: int(builtin[k]) for k in ("event_count", "session_count")})
    out["lifetime_revenue"] = float(builtin["lifetime_revenue"])
    out["is_bot"] = builtin["is_bot"] == "1"
    return out
