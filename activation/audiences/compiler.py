"""Compile a definition tree to one parameterised ClickHouse SELECT of member profile ids.

The SQL text is assembled only from this module's fragments and the allow-listed columns of
`tree.COMPUTED`; every name and value of the definition is a bound parameter (`{p0:String}`).
The universe is the live, non-bot rows of `profiles`; each condition is a test on that row:

- trait: `profile_id IN` the newest, non-deleted `profile_traits` rows passing the value test;
- event: events (bots skipped) mapped to a profile by `identity.resolve` — by `user_id` when it
  is mapped, else by `anonymous_id` — counted per profile; a count test that holds for zero
  events (`< 3`, `= 0`) is compiled as `NOT IN` the profiles whose count fails it. A streaming
  micro-batch binds its profiles' identifiers (`scope`): their events are read once, by identifier;
  otherwise they are found through the mapping;
- computed: a comparison on the `profiles` column for a built-in trait; for a user-defined one, on
  its value in `profile_computed_traits` (no value counts as 0, like an event count);
- page and screen views: as events, matched on type and page/screen name; enrichment filters test
  allow-listed columns of `events` (`tree.ENRICHMENT`);
- audience: `IN` the current members of the audience with that key (its latest changes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activation.audiences.codec import parse_time
from activation.audiences.current import members_sql
from activation.audiences.predicates import Params, column_test, holds, json_test
from activation.audiences.tree import (
    COMPUTED,
    ENRICHMENT,
    And,
    Computed,
    Enrichment,
    Event,
    Leaf,
    Member,
    Node,
    Not,
    Or,
    Trait,
)
from activation.identity.resolve import resolved, resolved_in_scope

EVENTS = "events"

_TIME = "DateTime64(3, 'UTC')"
_SCOPE_IDS = "{column} IN (SELECT identifier_value FROM identity_map FINAL WHERE identifier_type = '{column}'"
_USER_COMPUTED = (
    "SELECT profile_id FROM profile_computed_traits FINAL WHERE {scope}name = {name} AND deleted = 0"
    " AND {test}"
)
_KIND_FILTER = {"event": "event = {name}", "page": "type = 'page' AND name = {name}"}
_KIND_FILTER["screen"] = "type = 'screen' AND name = {name}"


def compile_audience(
    node: Node,
    now: datetime,
    profile_id: str | None = None,
    profile_ids: list[str] | None = None,
    scope: dict[str, object] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(sql, params) selecting `profile_id` of every member; with `profile_id`, only that profile;
    with `profile_ids`, only those (streaming: the profiles a tick touched). `scope`: those profiles'
    identifiers as identity.states.Scope binds them (`Scope.params()`); event conditions then read
    the scope's events by those identifiers, resolved with the bound mapping, in one pass."""
    compiler = Compiler(now, profile_id, profile_ids, scope)
    where = compiler.node(node)
    sql = f"SELECT profile_id FROM profiles FINAL WHERE {compiler.universe()} AND {where}"
    return sql, compiler.values | (scope or {})


def sql_time(moment: datetime) -> str:
    """A timestamp (naive means UTC) as ClickHouse parses it for a DateTime64(3, 'UTC') parameter."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Compiler:
    """Builds SQL fragments for one query; `values` holds the parameters bound so far."""

    def __init__(
        self,
        now: datetime,
        profile_id: str | None = None,
        profile_ids: list[str] | None = None,
        scope: dict[str, object] | None = None,
    ) -> None:
        self.params = Params()
        self.now = now
        self.bound_scope = scope is not None and profile_ids is not None
        self.profile = self.params.bind(profile_id, "String") if profile_id is not None else None
        self.profiles = self.params.bind(profile_ids, "Array(String)") if profile_ids is not None else None
        # `profile_id{self.scope}`: one profile (explain), a list (streaming), or every profile
        self.scope = f" = {self.profile}" if self.profile else f" IN {self.profiles}" if self.profiles else ""

    @property
    def values(self) -> dict[str, Any]:
        return self.params.values

    def universe(self) -> str:
        scope = f" AND profile_id{self.scope}" if self.scope else ""
        return f"deleted = 0 AND is_bot = 0{scope}"

    def node(self, node: Node) -> str:
        if isinstance(node, And | Or):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"NOT {self.node(node.item)}"
        return self.leaf(node)

    def leaf(self, leaf: Leaf) -> str:
        if isinstance(leaf, Trait):
            return f"profile_id IN ({self.traits(leaf)})"
        if isinstance(leaf, Computed):
            return self.computed(leaf)
        if isinstance(leaf, Member):
            return f"profile_id IN ({self.members(leaf)})"
        return self.event(leaf)

    def traits(self, leaf: Trait) -> str:
        name = self.params.bind(leaf.name, "String")
        test = json_test("value", "", leaf.test, self.params)
        return (
            f"SELECT profile_id FROM profile_traits FINAL WHERE {self.scoped('trait = ' + name)} AND {test}"
        )

    def trait_value(self, leaf: Trait) -> str:
        """The profile's raw JSON value of the trait ('' when unset); needs a profile scope."""
        name = self.params.bind(leaf.name, "String")
        return f"(SELECT any(value) FROM profile_traits FINAL WHERE {self.scoped('trait = ' + name)})"

    def scoped(self, condition: str) -> str:
        scope = f"profile_id{self.scope} AND " if self.scope else ""
        return f"{scope}{condition} AND deleted = 0"

    def computed(self, leaf: Computed) -> str:
        if leaf.name not in COMPUTED:
            return self.user_computed(leaf)
        column, kind = COMPUTED[leaf.name]
        if kind == "time":
            bound = self.params.bind(sql_time(parse_time(str(leaf.value))), _TIME)
        else:
            bound = self.params.bind(float(leaf.value), "Float64")
        return f"({column} {leaf.op} {bound})"

    def user_computed(self, leaf: Computed) -> str:
        """A user-defined computed trait; profiles without a value hold 0."""
        bound = self.params.bind(float(leaf.value), "Float64")
        scope = f"profile_id{self.scope} AND " if self.scope else ""
        name = self.params.bind(leaf.name, "String")
        if holds(0.0, leaf.op, float(leaf.value)):
            failing = _USER_COMPUTED.format(scope=scope, name=name, test=f"NOT (value {leaf.op} {bound})")
            return f"profile_id NOT IN ({failing})"
        passing = _USER_COMPUTED.format(scope=scope, name=name, test=f"value {leaf.op} {bound}")
        return f"profile_id IN ({passing})"

    def user_computed_value(self, leaf: Computed) -> str:
        """The profile's value of a user-defined computed trait (0 when unset); needs a profile scope."""
        name = self.params.bind(leaf.name, "String")
        return (
            "(SELECT coalesce(any(value), 0) FROM profile_computed_traits FINAL"
            f" WHERE profile_id = {self.profile} AND name = {name} AND deleted = 0)"
        )

    def members(self, leaf: Member) -> str:
        key = self.params.bind(leaf.audience, "String")
        audience = f"(SELECT any(id) FROM audiences FINAL WHERE key = {key} AND deleted = 0)"
        scope = f" AND profile_id{self.scope}" if self.scope else ""
        return members_sql(audience, scope)

    def event(self, leaf: Event) -> str:
        bound = self.params.bind(leaf.count.value, "UInt64")
        if holds(0, leaf.count.op, leaf.count.value):
            failing = self.event_counts(leaf, f"NOT (count() {leaf.count.op} {bound})")
            return f"profile_id NOT IN (SELECT profile_id FROM ({failing}))"
        passing = self.event_counts(leaf, f"count() {leaf.count.op} {bound}")
        return f"profile_id IN (SELECT profile_id FROM ({passing}))"

    def event_counts(self, leaf: Event, having: str = "") -> str:
        """(profile_id, n): profiles with matching events and how many, filtered by `having`.

        Events are mapped to profiles by identity.resolve (scoped: only these events' identifiers
        are looked up; unscoped: the whole mapping joined once), then counted per profile; profiles
        without matching events are absent."""
        if self.bound_scope:  # the scope's own events, each with its profile, in one read
            filters = " AND ".join(self.event_filters(leaf, by_identifier=False))
            mapped = f"SELECT profile_id FROM ({resolved_in_scope(EVENTS)}) WHERE {filters}"
        else:
            raw = f"SELECT user_id, anonymous_id FROM events WHERE {' AND '.join(self.event_filters(leaf))}"
            mapped = resolved(raw, narrow=bool(self.scope))
        scope = f" AND profile_id{self.scope}" if self.scope else ""
        condition = "1" + scope + (f" AND {having}" if having else "")
        return f"SELECT profile_id, count() AS n FROM ({mapped}) GROUP BY profile_id HAVING {condition}"

    def event_filters(self, leaf: Event, by_identifier: bool = True) -> list[str]:
        filters = [_KIND_FILTER[leaf.kind].format(name=self.params.bind(leaf.name, "String")), "is_bot = 0"]
        if leaf.within_days is not None:
            since = self.now - timedelta(days=leaf.within_days)
            filters.append(f"timestamp >= {self.params.bind(sql_time(since), _TIME)}")
        if leaf.between is not None:
            start, end = (sql_time(parse_time(bound)) for bound in leaf.between)
            filters.append(f"timestamp >= {self.params.bind(start, _TIME)}")
            filters.append(f"timestamp < {self.params.bind(end, _TIME)}")
        for item in leaf.where:
            if isinstance(item, Enrichment):
                filters.append(column_test(ENRICHMENT[item.field], item.test, self.params))
                continue
            keys = "".join(f", {self.params.bind(part, 'String')}" for part in item.path.split("."))
            filters.append(json_test("properties", keys, item.test, self.params))
        if self.scope and by_identifier:
            filters.append(f"({self.identifiers('user_id')} OR {self.identifiers('anonymous_id')})")
        return filters

    def identifiers(self, column: str) -> str:
        """Events of the scoped profile only: its identifiers, found before the mapping join."""
        return f"{_SCOPE_IDS.format(column=column)} AND profile_id{self.scope} AND deleted = 0)"
