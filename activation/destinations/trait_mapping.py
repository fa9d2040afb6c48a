"""Trait sync config shared by the CRM destinations (`"mode": "traits"`), pure.

`mapping` maps a Magpie value to a CRM field: a profile trait (`plan`), a computed trait
(`computed:orders_90d`, or a built-in such as `lifetime_revenue`), or an audience membership
(`audience:<key>` → true/false). `crm_owned` lists CRM fields Magpie never writes: the CRM is their
system of record (their values come in through the CRM source pull), so a mapping entry that names
one is kept for reference and skipped on every send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation.destinations.base import Config

SOURCE = re.compile(r"(?:(?:computed|audience):)?[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
MAX_FIELDS = 100


@dataclass(frozen=True)
class TraitMapping:
    mapping: Mapping[str, str]
    crm_owned: frozenset[str]

    def writable(self) -> dict[str, str]:
        """Magpie source → CRM field, without the CRM-owned fields."""
        return {k: v for k, v in self.mapping.items() if v not in self.crm_owned}


def is_trait_mode(config: Config) -> bool:
    return config.get("mode") == "traits"


def read_mapping(config: Config, field_pattern: str) -> tuple[TraitMapping, dict[str, str]]:
    errors: dict[str, str] = {}
    raw: Any = config.get("mapping")
    owned: Any = config.get("crm_owned", [])
    ok = isinstance(raw, dict) and 0 < len(raw) <= MAX_FIELDS
    ok = ok and all(isinstance(k, str) and SOURCE.fullmatch(k) and isinstance(v, str) for k, v in raw.items())
    if not ok:
        errors["mapping"] = "must map 1 to 100 traits (trait, computed:<name>, audience:<key>) to CRM fields"
        raw = {}
    bad = sorted(v for v in raw.values() if not re.fullmatch(field_pattern, v))
    if bad:
        errors["mapping"] = f"CRM field names must match {field_pattern}: {', '.join(bad[:5])}"
    if len(set(raw.values())) != len(raw):
        errors["mapping"] = "each CRM field may be written from one Magpie value only"
    if not isinstance(owned, list) or not all(isinstance(f, str) for f in owned):
        errors["crm_owned"] = "must be a list of CRM field names"
        owned = []
    return TraitMapping(dict(raw), frozenset(owned)), errors
