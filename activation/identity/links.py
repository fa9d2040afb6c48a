"""Links in ClickHouse: extracted from events by one INSERT ... SELECT, read back for stitching.

Extraction normalises identifiers in SQL (mirroring `identifiers.normalise`) and stores each
distinct identifier set once with its earliest evidence; a set already stored with earlier or
equal evidence is skipped, so re-extracting an overlapping window is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.graph import Link
from activation.identity.identifiers import ALIAS_TYPE, GROUP_TYPE, PHONE_REGIONS, Identifier
from activation.identity.rules import Rules
from activation.identity.store import MAX_BOUND_IDS, read_mapping, read_setting, write_setting
from activation.privacy.person import PAIRS
from activation.privacy.person import Person as PrivacyPerson
from clickhouse.erase import erase

_WS = "' \\t\\n\\r\\x0B\\x0C'"
_TRIM = f"trim(BOTH {_WS} FROM {{x}})"
_PLAIN = f"if(lengthUTF8({_TRIM}) <= 256, {_TRIM}, '')"
_EMAIL = (
    f"if(position(trim(BOTH '@' FROM lowerUTF8({_TRIM})), '@') > 0 AND lengthUTF8({_TRIM}) <= 256, "
    f"lowerUTF8({_TRIM}), '')"
)
_PHONE_DIGITS = f"replaceRegexpAll({_TRIM}, '[\\\\s().\\\\-/]', '')"
_NATIONAL = (
    f"if({{{{trunk:String}}}} != '' AND startsWith({_PHONE_DIGITS}, {{{{trunk:String}}}}), "
    f"substring({_PHONE_DIGITS}, length({{{{trunk:String}}}}) + 1), {_PHONE_DIGITS})"
)
_PHONE_PLUS = (
    f"multiIf(startsWith({_PHONE_DIGITS}, '00'), concat('+', substring({_PHONE_DIGITS}, 3)), "
    f"{{{{calling_code:String}}}} != '' AND match({_PHONE_DIGITS}, '^[0-9]'), "
    f"concat('+', {{{{calling_code:String}}}}, {_NATIONAL}), {_PHONE_DIGITS})"
)
_PHONE = f"if(match({_PHONE_PLUS}, '^\\\\+[1-9][0-9]{{{{6,14}}}}$'), {_PHONE_PLUS}, '')"
_TRAIT = (
    "if(type = 'group', '', if(JSONExtractString(traits, '{k}') != '', JSONExtractString(traits, '{k}'), "
    "JSONExtractString(context, 'traits', '{k}')))"
)
_EXTERNAL = (
    "arrayMap(j -> (concat('ext:', JSONExtractString(j, 'type')), "
    + _PLAIN.format(x="if(JSONType(j, 'id') = 'String', JSONExtractString(j, 'id'), JSONExtractRaw(j, 'id'))")
    + "), arraySlice(JSONExtractArrayRaw(context, 'externalIds'), 1, 20))"
)
IDS_SQL = (
    "arraySort(arrayDistinct(arrayFilter(p -> p.2 != '' AND p.1 != 'ext:', arrayConcat(["
    + ", ".join(
        f"('{t}', {_PLAIN.format(x=c)})"
        for t, c in [
            ("user_id", "user_id"),
            ("anonymous_id", "anonymous_id"),
            (ALIAS_TYPE, "previous_id"),
            ("device_id", "device_id"),
            ("advertising_id", "advertising_id"),
            (GROUP_TYPE, "group_id"),
        ]
    )
    + f", ('email', {_EMAIL.format(x=_TRAIT.format(k='email'))})"
    + f", ('phone', {_PHONE.format(x=_TRAIT.format(k='phone'))})"
    + f"], {_EXTERNAL}))))"
)

_EXTRACT = f"""
INSERT INTO identity_links (link_key, ids, timestamp, message_id, source_id, kind)
SELECT n.link_key, n.ids, n.ev.1, n.ev.2, n.ev.3, n.ev.4
FROM (
    SELECT cityHash64(ids) AS link_key, ids, min((timestamp, message_id, source_id, type)) AS ev
    FROM (SELECT {IDS_SQL} AS ids, timestamp, message_id, source_id, type FROM events
          WHERE inserted_at > {{since:DateTime64(6, 'UTC')}}
            AND inserted_at <= {{until:DateTime64(6, 'UTC')}})
    WHERE length(ids) > 0
    GROUP BY ids
) AS n
LEFT JOIN (
    SELECT link_key, 1 AS seen, min((timestamp, message_id, source_id)) AS old FROM identity_links
    WHERE link_key IN (
        SELECT cityHash64({IDS_SQL}) FROM events
        WHERE inserted_at > {{since:DateTime64(6, 'UTC')}} AND inserted_at <= {{until:DateTime64(6, 'UTC')}})
    GROUP BY link_key
) AS o ON o.link_key = n.link_key
WHERE o.seen = 0 OR (n.ev.1, n.ev.2, n.ev.3) < o.old
"""

_PAIRS = "Array(Tuple(String, String))"
_LINK_COLUMNS = "ids, min((timestamp, message_id, source_id, kind)) AS ev"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def phone_params(region: str) -> dict[str, str]:
    """The parameters IDS_SQL needs: national phone numbers are read as numbers of `region`."""
    code, trunk = PHONE_REGIONS.get(region, ("", ""))
    return {"calling_code": code, "trunk": trunk}


def extract_links(ch: Client, since: datetime, until: datetime, rules: Rules) -> None:
    """Store the identifier sets of events inserted in (since, until]."""
    params = {"since": since, "until": until, **phone_params(rules.default_phone_region)}
    ch.command(_EXTRACT, parameters=params)


def insert_links(ch: Client, links: Iterable[Link]) -> None:
    """Store links that do not come from events (imports, accepted proposals)."""
    rows = [[sorted(link.ids), link.timestamp, link.message_id, link.source_id, link.kind] for link in links]
    if rows:
        ch.insert(
            "identity_links", rows, column_names=["ids", "timestamp", "message_id", "source_id", "kind"]
        )


_LOG_SPAN = "inserted_at > {a:DateTime64(6, 'UTC')} AND inserted_at <= {u:DateTime64(6, 'UTC')}"
_NEWEST_LINK = "SELECT max(inserted_at) FROM identity_link_log WHERE inserted_at > {a:DateTime64(6, 'UTC')}"
_NEW_SETS = (
    "SELECT DISTINCT ids FROM identity_links WHERE link_key IN"
    f" (SELECT link_key FROM identity_link_log WHERE {_LOG_SPAN})"
)
# A component's sets: the frontier looked up by identifier, the sets by key. A key collision may
# bring a set without any frontier identifier: the caller drops those (hasAny with a large constant
# array costs seconds here).
_BY_IDS = (
    f"SELECT {_LINK_COLUMNS} FROM identity_links WHERE link_key IN (SELECT link_key FROM identity_link_ids"
    f" WHERE (identifier_type, identifier_value) IN {{f:{_PAIRS}}}) GROUP BY link_key, ids"
)
INDEXED_MARK = "identity_links_indexed"
_INDEX_VIEWS = {"identity_link_ids_mv": "identity_link_ids", "identity_link_log_mv": "identity_link_log"}
_VIEW_TIMES = (
    "SELECT min(metadata_modification_time) FROM system.tables"
    " WHERE database = currentDatabase() AND name IN {n:Array(String)}"
)
_BACKFILL = {
    "identity_link_ids": "SELECT pair.1, pair.2, link_key FROM identity_links ARRAY JOIN ids AS pair"
    " WHERE COND",
    "identity_link_log": "SELECT inserted_at, link_key FROM identity_links WHERE COND",
}
TABLES = ("identity_link_ids", "identity_link_log", "identity_links")


def links_high_mark(ch: Client, after: datetime = EPOCH) -> datetime:
    """The newest inserted_at of the stored sets, `after` when none is newer (a key range read)."""
    value: datetime = ch.query(_NEWEST_LINK, parameters={"a": after}).result_rows[0][0]
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return max(value, after)


def new_link_ids(ch: Client, after: datetime, until: datetime) -> set[Identifier]:
    """The identifiers of the sets stored in (after, until] that can change the graph.

    A set of one identifier that is already mapped cannot: it joins nothing (a join takes two) and
    its node exists, so where it falls in the canonical order is irrelevant (`graph.stitch`). Such
    sets are what a known visitor's events bring when they carry one of the visitor's ids alone
    (an anonymous id seen so far only with a user id); leaving them out saves the tick the
    component walk, the stitch and the outcome rewrite (~450 of ~1,000 ms in tick_bench)."""
    rows = ch.query(_NEW_SETS, parameters={"a": after, "u": until}).result_rows
    sets = [[Identifier(*pair) for pair in ids] for (ids,) in rows]
    lone = {s[0] for s in sets if len(s) == 1}
    # beyond the bound read_mapping would read the whole mapping: then every identifier seeds
    known = read_mapping(ch, lone) if 0 < len(lone) <= MAX_BOUND_IDS else {}
    return {i for s in sets for i in s if len(s) > 1 or i not in known}


def ensure_indexed(ch: Client, now: datetime) -> int:
    """Index the sets stored before migration 0012's views existed (an upgrade), once; how many.

    Sets stored since pass through the views; indexing one twice is harmless (a replacing key, a
    log entry older than any watermark)."""
    if read_setting(ch, INDEXED_MARK):
        return 0
    cutoff = ch.query(_VIEW_TIMES, parameters={"n": list(_INDEX_VIEWS)}).result_rows[0][0]
    where = "inserted_at <= {c:DateTime64(6, 'UTC')}"
    count = int(ch.query(f"SELECT count() FROM identity_links WHERE {where}", parameters={"c": cutoff})
                .result_rows[0][0])  # fmt: skip
    for table, select in _BACKFILL.items() if count else []:
        ch.command(f"INSERT INTO {table} {select.replace('COND', where)}", parameters={"c": cutoff})
    write_setting(ch, INDEXED_MARK, str(count), now)
    return count


def all_links(ch: Client) -> list[Link]:
    """Every stored set, each with its earliest evidence (the full-restitch input)."""
    sql = f"SELECT {_LINK_COLUMNS} FROM identity_links GROUP BY link_key, ids"
    return _to_links(ch.query(sql).result_rows)


def component_links(ch: Client, seeds: set[Identifier], rules: Rules, max_nodes: int) -> list[Link] | None:
    """Links of the connected components around `seeds` (blocked and group ids do not connect).

    None when the component grows past `max_nodes`: the caller restitches everything instead.
    """
    seen: set[Identifier] = set()
    frontier = {i for i in seeds if _connects(i, rules)}
    found: dict[tuple[Identifier, ...], Link] = {}
    while frontier:
        seen |= frontier
        if len(seen) > max_nodes:
            return None
        terms = _search_terms(frontier)
        wanted = {Identifier(*t) for t in terms}
        for link in _to_links(ch.query(_BY_IDS, parameters={"f": terms}).result_rows):
            if wanted.intersection(link.ids):
                found[link.ids] = link
        reached = {i for link in found.values() for i in link.ids}
        frontier = {i for i in reached if _connects(i, rules)} - seen
    return list(found.values())


def _connects(identifier: Identifier, rules: Rules) -> bool:
    return identifier.type != GROUP_TYPE and not rules.is_blocked(identifier)


def _search_terms(frontier: set[Identifier]) -> list[tuple[str, str]]:
    """The frontier, plus the alias forms a previousId may take (user id or anonymous id)."""
    terms = set(frontier)
    for i in frontier:
        if i.type in ("user_id", "anonymous_id"):
            terms.add(Identifier(ALIAS_TYPE, i.value))
        elif i.type == ALIAS_TYPE:
            terms |= {Identifier("user_id", i.value), Identifier("anonymous_id", i.value)}
    return [(t.type, t.value) for t in sorted(terms)]


def _to_links(rows: Iterable[Any]) -> list[Link]:
    return [Link(tuple(Identifier(*p) for p in ids), ev[0], ev[1], ev[2], ev[3]) for ids, ev in rows]


def forget(ch: Client, person: PrivacyPerson) -> dict[str, int]:
    """Erase every identifier set holding one of the person's identifiers, and its index rows
    (privacy, SPEC §9); the index first, while the sets still tell which keys are the person's."""
    keys = f"link_key IN (SELECT link_key FROM identity_links WHERE hasAny(ids, {PAIRS}))"
    params = person.params()
    return {
        "identity_link_ids": erase(
            ch, "identity_link_ids", f"{keys} OR (identifier_type, identifier_value) IN {PAIRS}", params
        ),
        "identity_link_log": erase(ch, "identity_link_log", keys, params),
        "identity_links": erase(ch, "identity_links", f"hasAny(ids, {PAIRS})", params),
    }
