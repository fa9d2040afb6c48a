"""Identity rules: blocked values, per-type limits, priority order, profile size cap, fuzzy thresholds,
whether an alias may merge past the per-type limits (`alias_overrides_limits`, default true: an
alias is an explicit instruction, see graph.py) and the region of national phone numbers
(`default_phone_region`, e.g. "GB": `07700 900123` is stored as `+447700900123`).

Rules are plain data, validated when built from a JSON document (the admin API stores one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from activation.identity.identifiers import (
    EXTERNAL_PREFIX,
    PERSON_TYPES,
    PHONE_REGIONS,
    Identifier,
    is_known_type,
)

DEFAULT_BLOCKED = (
    "null",
    "undefined",
    "anonymous",
    "guest",
    "0",
    "-1",
    "none",
    "nil",
    "nan",
    "[object object]",
    "unknown",
    "n/a",
    "true",
    "false",
    "id",
    "user_id",
    "anonymous_id",
    "email",
    "not_authenticated",
)
DEFAULT_LIMITS = MappingProxyType(
    {"user_id": 1, "email": 5, "phone": 5, "device_id": 10, "advertising_id": 10, "anonymous_id": 0}
)
DEFAULT_PRIORITY = ("user_id", "email", "phone", "advertising_id", "device_id", "anonymous_id", "record")
_ALL_ZEROS = re.compile(r"^[0\-_.:\s]+$")
_MAX_BLOCKED = 10_000


class RulesError(ValueError):
    """A rules document that does not validate; `fields` maps each bad field to its reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid identity rules: " + ", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Rules:
    blocked_values: frozenset[str] = frozenset(DEFAULT_BLOCKED)
    limits: MappingProxyType[str, int] = field(default_factory=lambda: DEFAULT_LIMITS)
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    max_profile_identifiers: int = 1000
    fuzzy_propose_threshold: float = 80.0
    fuzzy_auto_threshold: float = 97.0
    alias_overrides_limits: bool = True
    default_phone_region: str = ""

    def is_blocked(self, identifier: Identifier) -> bool:
        value = identifier.value
        if not value.strip() or _ALL_ZEROS.match(value):
            return True
        return value.strip().casefold() in self.blocked_values

    def limit(self, type_: str) -> int:
        """Most identifiers of this type one profile may hold; 0 means unlimited."""
        return self.limits.get(type_, 0)

    @cached_property
    def _ranks(self) -> dict[str, tuple[int, str]]:
        return {}

    def rank(self, type_: str) -> tuple[int, str]:
        """Sort key: types named in the priority order first, then external ids, then the rest."""
        found = self._ranks.get(type_)
        if found is None:
            found = self._ranks[type_] = self._rank(type_)
        return found

    def _rank(self, type_: str) -> tuple[int, str]:
        if type_ in self.priority:
            return (self.priority.index(type_), "")
        return (len(self.priority) + (0 if type_.startswith(EXTERNAL_PREFIX) else 1), type_)

    def key(self, identifier: Identifier) -> tuple[int, str, str]:
        """Canonical order of identifiers: priority, then value."""
        rank, name = self.rank(identifier.type)
        return (rank, name, identifier.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocked_values": sorted(self.blocked_values),
            "limits": dict(sorted(self.limits.items())),
            "priority": list(self.priority),
            "max_profile_identifiers": self.max_profile_identifiers,
            "fuzzy_propose_threshold": self.fuzzy_propose_threshold,
            "fuzzy_auto_threshold": self.fuzzy_auto_threshold,
            "alias_overrides_limits": self.alias_overrides_limits,
            "default_phone_region": self.default_phone_region,
        }


def rules_from_dict(doc: dict[str, Any]) -> Rules:
    """Build rules from a JSON document; missing fields keep their defaults."""
    errors: dict[str, str] = {}
    unknown = set(doc) - set(Rules.__dataclass_fields__)
    for name in sorted(unknown):
        errors[name] = "unknown field"
    kwargs: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        if name in doc:
            value, reason = check(doc[name])
            if reason:
                errors[name] = reason
            else:
                kwargs[name] = value
    if errors:
        raise RulesError(errors)
    rules = Rules(**kwargs)
    if rules.fuzzy_auto_threshold < rules.fuzzy_propose_threshold:
        raise RulesError({"fuzzy_auto_threshold": "must be at least fuzzy_propose_threshold"})
    return rules


def _check_blocked(raw: Any) -> tuple[Any, str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        return None, "must be a list of strings"
    if len(raw) > _MAX_BLOCKED:
        return None, f"at most {_MAX_BLOCKED} values"
    return frozenset(v.strip().casefold() for v in raw), ""


def _check_limits(raw: Any) -> tuple[Any, str]:
    if not isinstance(raw, dict):
        return None, "must be an object of type -> limit"
    for type_, limit in raw.items():
        if not is_known_type(type_) or type_ == "group_id":
            return None, f"unknown identifier type {type_!r}"
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 100_000:
            return None, f"limit for {type_} must be an integer 0..100000 (0 = unlimited)"
    return MappingProxyType({**DEFAULT_LIMITS, **raw}), ""


def _check_priority(raw: Any) -> tuple[Any, str]:
    if not isinstance(raw, list) or not all(isinstance(t, str) and is_known_type(t) for t in raw):
        return None, f"must be a list of identifier types ({', '.join(PERSON_TYPES)}, ext:<name>)"
    if len(set(raw)) != len(raw):
        return None, "types must not repeat"
    return tuple(raw), ""


def _check_int(raw: Any) -> tuple[Any, str]:
    ok = isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 1_000_000
    return (raw, "") if ok else (None, "must be an integer 1..1000000")


def _check_score(raw: Any) -> tuple[Any, str]:
    ok = isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw <= 100
    return (float(raw), "") if ok else (None, "must be a number 0..100")


def _check_flag(raw: Any) -> tuple[Any, str]:
    return (raw, "") if isinstance(raw, bool) else (None, "must be true or false")


def _check_region(raw: Any) -> tuple[Any, str]:
    if raw == "" or (isinstance(raw, str) and raw.upper() in PHONE_REGIONS):
        return raw.upper(), ""
    return None, f"a region code ({', '.join(sorted(PHONE_REGIONS))}) or '' for none"


_CHECKS = {
    "blocked_values": _check_blocked,
    "limits": _check_limits,
    "priority": _check_priority,
    "max_profile_identifiers": _check_int,
    "fuzzy_propose_threshold": _check_score,
    "fuzzy_auto_threshold": _check_score,
    "alias_overrides_limits": _check_flag,
    "default_phone_region": _check_region,
}
