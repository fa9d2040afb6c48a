"""Checking a destination request body: field shapes, then the destination type's own rules.

Pure: takes the body (and, for updates, the stored values) and returns cleaned fields or raises an
ApiError 400 naming every bad field. Credential *values* never appear in a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from activation.admin.errors import ApiError
from activation.destinations import REGISTRY, Credentials
from activation.privacy.consent import config_errors as consent_config_errors

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_:.-]{0,63}")
MAX_MAPPINGS = 50
_Check = Callable[[Any], str]


def _name(raw: Any) -> str:
    return "" if isinstance(raw, str) and 0 < len(raw.strip()) <= 200 else "a non-empty string (≤ 200)"


def _object(raw: Any) -> str:
    return "" if isinstance(raw, dict) and len(raw) <= 100 else "an object"


def _credentials(raw: Any) -> str:
    ok = isinstance(raw, dict) and all(
        isinstance(k, str) and (isinstance(v, str) or v is None) for k, v in raw.items()
    )
    return "" if ok and len(raw) <= 50 else "an object of string values"


def _consent(raw: Any) -> str:
    ok = raw is None or (isinstance(raw, str) and len(raw) <= 100)
    return "" if ok else "a category name (string) or null"


def _flag(raw: Any) -> str:
    return "" if isinstance(raw, bool) else "true or false"


def _mapping(raw: Any) -> str:
    ok = isinstance(raw, dict) and len(raw) <= MAX_MAPPINGS
    ok = ok and all(NAME_PATTERN.fullmatch(k) and isinstance(v, str) and v for k, v in raw.items())
    return "" if ok else "an object of destination field → profile trait names"


def _priority(raw: Any) -> str:
    ok = isinstance(raw, list) and len(raw) <= 20
    ok = ok and all(isinstance(v, str) and NAME_PATTERN.fullmatch(v) for v in raw)
    return "" if ok else "a list of identifier types"


def _type(raw: Any) -> str:
    return "" if raw in REGISTRY else f"one of {', '.join(sorted(REGISTRY))}"


_CHECKS: dict[str, _Check] = {
    "type": _type,
    "name": _name,
    "config": _object,
    "credentials": _credentials,
    "consent_category": _consent,
    "enabled": _flag,
    "field_mapping": _mapping,
    "identifier_priority": _priority,
}


def invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(400, "invalid_destination", "the destination has invalid fields", fields)


def read_body(body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The known fields of `body`, shape-checked; raises ApiError 400 listing every problem."""
    errors = {k: "unknown field" for k in body if k not in _CHECKS}
    if not creating and "type" in body:
        errors["type"] = "cannot be changed; create a new destination"
    required = ("type", "name", "config") if creating else ()
    errors.update({k: "is required" for k in required if k not in body})
    for key, check in _CHECKS.items():
        if key in body and key not in errors:
            problem = check(body[key])
            if problem:
                errors[key] = f"must be {problem}"
    if errors:
        raise invalid(errors)
    return {k: v for k, v in body.items() if k in _CHECKS}


def merge_credentials(current: Mapping[str, str], changes: Mapping[str, str | None]) -> Credentials:
    """PATCH semantics: given names replace stored ones, a null value removes the name."""
    merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
    return Credentials({k: v for k, v in merged.items() if changes.get(k, v) is not None})


def check_type_rules(kind: str, config: Mapping[str, Any], credentials: Credentials) -> None:
    """The destination type's config and credential validation, as `config.x` / `credentials.y` fields."""
    destination = REGISTRY[kind]
    errors = {f"config.{k}": v for k, v in destination.validate_config(config).items()}
    errors.update(consent_config_errors(config))
    errors.update({f"credentials.{k}": v for k, v in destination.validate_credentials(credentials).items()})
    if errors:
        raise invalid(errors)


def endpoint_keys(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Config keys whose change moves an endpoint the destination contacts (`endpoint_urls`)."""
    destination = REGISTRY[kind]
    urls = destination.endpoint_urls(before)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if destination.endpoint_urls(after) == urls:
        return []
    alone = [k for k in changed if destination.endpoint_urls(_with_key(before, after, k)) != urls]
    return alone or changed


def _with_key(before: Mapping[str, Any], after: Mapping[str, Any], key: str) -> dict[str, Any]:
    moved = {k: v for k, v in before.items() if k != key}
    return {**moved, key: after[key]} if key in after else moved


def require_reentered_credentials(
    kind: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    stored: Collection[str],
    changes: Mapping[str, str | None] | None,
) -> None:
    """Credentials are sent where the config points. Pointing it elsewhere needs every stored credential
    re-entered (or removed) in the same request; otherwise an admin could send them to any host."""
    moved = endpoint_keys(kind, before, after)
    missing = sorted(set(stored) - set(changes or {}))
    if not moved or not missing:
        return
    fields = {f"config.{k}": "changes where credentials are sent" for k in moved}
    fields["credentials"] = f"must re-enter {', '.join(missing)} in the same request"
    message = "changing where credentials are sent requires re-entering them"
    raise ApiError(400, "credentials_required", message, fields)
