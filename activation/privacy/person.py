"""The person a privacy request is about: every profile and identifier of the stitched whole.

A request names one or more identifiers; `activation.privacy.expand` widens them through the
identity graph to every identifier of every profile they touch. Erasure (each table's `forget`),
suppression and the outbound removal (`activation.privacy.outbound.erase_everywhere`) all take
this one value, so they agree on whom they act.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activation.identity.identifiers import Identifier


@dataclass(frozen=True)
class Person:
    profile_ids: frozenset[str]
    identifiers: frozenset[Identifier]

    def values(self) -> frozenset[str]:
        """Every identifier value (any type), for tables that hold values without their type."""
        return frozenset(i.value for i in self.identifiers)

    def of_type(self, type_: str) -> frozenset[str]:
        return frozenset(i.value for i in self.identifiers if i.type == type_)

    def sorted_identifiers(self) -> list[Identifier]:
        return sorted(self.identifiers)

    @property
    def empty(self) -> bool:
        return not self.profile_ids and not self.identifiers

    def params(self) -> dict[str, Any]:
        """Query parameters every table's `forget` binds: `profiles`, `pairs` (type, value), `values`."""
        return {
            "profiles": sorted(self.profile_ids),
            "pairs": [(i.type, i.value) for i in self.sorted_identifiers()],
            "values": sorted(self.values()),
        }


PROFILES = "{profiles:Array(String)}"
PAIRS = "{pairs:Array(Tuple(String, String))}"
VALUES = "{values:Array(String)}"
