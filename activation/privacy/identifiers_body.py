"""Reading identifiers from privacy request bodies: `{"type", "value"}` objects of any person
identifier type (custom `ext:<name>` included) or `{"type": "profile", "value": <profile id>}`.
Group ids are refused: a group is a company, not a person."""

from __future__ import annotations

from typing import Any

from activation.admin.errors import ApiError
from activation.identity.identifiers import GROUP_TYPE, Identifier, identifier_problem, parse_identifier

MAX_IDENTIFIERS = 5000
PROFILE = "profile"


def _one(item: Any) -> Identifier | str:
    """The identifier, or why it is not one."""
    if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("type", "value")):
        return "must be an object with string type and value"
    type_, value = item["type"], item["value"]
    if type_ == PROFILE:
        return Identifier(PROFILE, value.strip()) if value.strip() else "a profile id is required"
    if type_ == GROUP_TYPE:
        return "group_id names a company, not a person"
    identifier = parse_identifier(f"{type_}:{value}")
    return identifier if identifier is not None else identifier_problem(f"{type_}:{value}")


def parse_identifiers_body(body: dict[str, Any]) -> list[Identifier]:
    raw = body.get("identifiers")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_IDENTIFIERS:
        fields = {"identifiers": f"a list of 1 to {MAX_IDENTIFIERS} {{type, value}} objects"}
        raise ApiError(400, "invalid_identifiers", "identifiers are required", fields)
    found, errors = [], {}
    for index, item in enumerate(raw):
        result = _one(item)
        if isinstance(result, str):
            errors[f"identifiers[{index}]"] = result
        else:
            found.append(result)
    if errors:
        raise ApiError(400, "invalid_identifiers", "some identifiers are not usable", errors)
    return found


def parse_identifier_body(body: dict[str, Any]) -> Identifier:
    result = _one(body.get("identifier"))
    if isinstance(result, str):
        raise ApiError(400, "invalid_identifier", "identifier is not usable", {"identifier": result})
    return result
