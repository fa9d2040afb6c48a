"""User-defined computed traits: a counter or aggregate over one event name and a time window.

Windows are whole UTC days: `window_days: 30` covers today and the 30 days before (the states are
per day), so a value changes as days leave the window, at the first tick of a new UTC day.

Definitions are data validated on the way in; the SQL fragment for an aggregate comes from a fixed
table, and every value from a definition is a bound query parameter, never pasted into SQL.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

# Over `profile_event_states` rows (one per pair, event and day): `prop_*` hold each property as
# JSONExtractFloat reads it, where a missing or non-numeric value is 0 (so an event without it is a 0
# for min and max, and counts in the average), exactly as aggregating the events themselves would.
_V = "if(has({m}.1, {{prop:String}}), {m}.2[indexOf({m}.1, {{prop:String}})], 0)"
_MISSING = f"{_V.format(m='prop_n')} < events"
_AGGREGATES = {
    "count": "toFloat64(sum(events))",
    "sum": f"sum({_V.format(m='prop_sum')})",
    "avg": f"sum({_V.format(m='prop_sum')}) / sum(events)",
    "min": f"min(if({_MISSING}, least({_V.format(m='prop_min')}, 0), {_V.format(m='prop_min')}))",
    "max": f"max(if({_MISSING}, greatest({_V.format(m='prop_max')}, 0), {_V.format(m='prop_max')}))",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED = frozenset(
    {"first_seen", "last_seen", "event_count", "session_count", "lifetime_revenue", "is_bot"}
)


class DefinitionError(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid computed trait: " + ", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class ComputedTrait:
    name: str
    aggregate: str
    event: str
    property: str = ""
    window_days: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate_sql(definition: ComputedTrait) -> str:
    return _AGGREGATES[definition.aggregate]


def definition_from_dict(doc: Any) -> ComputedTrait:
    """Validate a definition document; raises DefinitionError with one reason per bad field."""
    if not isinstance(doc, dict):
        raise DefinitionError({"": "must be an object"})
    errors = {k: "unknown field" for k in sorted(set(doc) - set(ComputedTrait.__dataclass_fields__))}
    name, aggregate = doc.get("name"), doc.get("aggregate")
    event, prop, window = doc.get("event"), doc.get("property", ""), doc.get("window_days", 0)
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
        errors["name"] = "lower-case letters, digits and _, starting with a letter; not a built-in trait"
    if aggregate not in _AGGREGATES:
        errors["aggregate"] = f"one of {', '.join(_AGGREGATES)}"
    if not isinstance(event, str) or not event or len(event) > 200:
        errors["event"] = "an event name (1..200 characters)"
    if (
        not isinstance(prop, str)
        or len(prop) > 200
        or (aggregate in _AGGREGATES and aggregate != "count" and not prop)
    ):
        errors["property"] = "a property name, required unless aggregate is count"
    if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 3650:
        errors["window_days"] = "an integer 0..3650 (0 = all time)"
    if errors:
        raise DefinitionError(errors)
    return ComputedTrait(str(name), str(aggregate), str(event), str(prop), int(window))
