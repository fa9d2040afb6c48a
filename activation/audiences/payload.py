"""Admin API bodies for audiences: validation into plain values, and the audience as JSON."""

from __future__ import annotations

import re
from typing import Any

from activation.audiences import codec
from activation.audiences.errors import InvalidDefinition
from activation.audiences.parser import parse
from activation.audiences.printer import render
from activation.audiences.responses import HTTPProblem
from activation.audiences.store import Audience
from activation.audiences.tree import Node

KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")
FIELDS = {"name", "key", "query", "definition", "destinations", "schedule", "emit_events", "enabled"}
MAX_DESTINATIONS = 100
MIN_EVERY_S, MAX_EVERY_S = 60, 30 * 86400
DEFAULT_EVERY_S = 3600


def definition(body: dict[str, Any]) -> Node:
    """The tree from `query` (text form) or `definition` (JSON form): exactly one of them."""
    if ("query" in body) == ("definition" in body):
        raise InvalidDefinition({"query": "give either query (text) or definition (JSON)"})
    if "query" in body:
        if not isinstance(body["query"], str):
            raise InvalidDefinition({"query": "must be a string"})
        return parse(body["query"])
    return codec.from_json(body["definition"])


def read_definition(body: dict[str, Any], errors: dict[str, str], required: bool) -> Node | None:
    """The definition of the body, or None with its problems added to `errors`."""
    if not required and "query" not in body and "definition" not in body:
        return None
    try:
        return definition(body)
    except InvalidDefinition as invalid:
        errors.update(invalid.fields)
        return None


def reject(errors: dict[str, str], definition_failed: bool) -> None:
    """Answer 400 when there are errors: `invalid_definition` if the definition is among them."""
    if errors:
        code = "invalid_definition" if definition_failed else "invalid_request"
        raise HTTPProblem(400, code, next(f"{k}: {v}" for k, v in errors.items()), errors)


def changes(body: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """(validated fields other than the definition, errors by field)."""
    errors = {field: "unknown field" for field in body if field not in FIELDS}
    out: dict[str, Any] = {}
    for field, check in _CHECKS.items():
        if field not in body:
            if creating and field in ("name", "key"):
                errors[field] = "required"
            continue
        value, problem = check(body[field])
        if problem:
            errors[field] = problem
        else:
            out[field] = value
    if not creating and "key" in body:
        errors["key"] = "cannot be changed (other audiences refer to it)"
    return out, errors


def _name(raw: Any) -> tuple[Any, str]:
    ok = isinstance(raw, str) and raw.strip() and len(raw) <= 200
    return raw, "" if ok else "a non-empty string of at most 200 characters"


def _key(raw: Any) -> tuple[Any, str]:
    ok = isinstance(raw, str) and KEY.match(raw)
    return (
        raw,
        "" if ok else "lower-case letters, digits, '_' and '-', at most 100, starting with a letter or digit",
    )


def _destinations(raw: Any) -> tuple[Any, str]:
    ok = (
        isinstance(raw, list)
        and len(raw) <= MAX_DESTINATIONS
        and all(isinstance(d, str) and 0 < len(d) <= 100 for d in raw)
    )
    return (tuple(dict.fromkeys(raw)) if ok else None), "" if ok else "a list of destination ids"


def _schedule(raw: Any) -> tuple[Any, str]:
    every = raw.get("every_s") if isinstance(raw, dict) and set(raw) <= {"every_s"} else None
    ok = (
        isinstance(every, int)
        and not isinstance(every, bool)
        and (every == 0 or MIN_EVERY_S <= every <= MAX_EVERY_S)
    )
    problem = f'{{"every_s": N}} with N from {MIN_EVERY_S} to {MAX_EVERY_S}, or 0 for manual runs only'
    return every, "" if ok else problem


def _flag(raw: Any) -> tuple[Any, str]:
    return raw, "" if isinstance(raw, bool) else "true or false"


_CHECKS = {
    "name": _name,
    "key": _key,
    "destinations": _destinations,
    "schedule": _schedule,
    "emit_events": _flag,
    "enabled": _flag,
}


def attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `Audience(…)` or `dataclasses.replace(audience, …)` from validated fields."""
    return {("schedule_every_s" if k == "schedule" else k): v for k, v in fields.items()}


def as_json(audience: Audience) -> dict[str, Any]:
    return {
        "id": audience.id,
        "key": audience.key,
        "name": audience.name,
        "definition": codec.to_json(audience.definition),
        "query": render(audience.definition),
        "destinations": list(audience.destinations),
        "schedule": {"every_s": audience.schedule_every_s},
        "emit_events": audience.emit_events,
        "enabled": audience.enabled,
        "created_at": audience.created_at,
        "updated_at": audience.updated_at,
    }
