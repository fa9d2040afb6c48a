"""Fuzzy matching of people without a shared hard identifier (rapidfuzz), pure.

Fields are normalised (names folded and sorted, emails lower-cased, phones to digits, company
suffixes dropped), compared with rapidfuzz, and combined as a weighted mean over the fields both
sides have. A match on a single field is capped below the usual thresholds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

WEIGHTS = {"name": 0.35, "email": 0.3, "phone": 0.25, "company": 0.1}
SINGLE_FIELD_CAP = 75.0
_COMPANY_SUFFIX = re.compile(r"\b(inc|llc|ltd|gmbh|sa|sas|bv|plc|corp|co|company|limited)\b\.?")
_NON_WORD = re.compile(r"[^\w@.+]+")


@dataclass(frozen=True)
class Person:
    name: str = ""
    email: str = ""
    phone: str = ""
    company: str = ""

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def block_keys(self) -> set[str]:
        """Cheap keys that candidates must share: last name, email domain, phone suffix, company."""
        keys = {f"name:{self.name.split()[-1]}"} if self.name else set()
        if "@" in self.email:
            keys.add(f"domain:{self.email.rsplit('@', 1)[1]}")
        if len(self.phone) >= 7:
            keys.add(f"phone:{self.phone[-7:]}")
        if self.company:
            keys.add(f"company:{self.company}")
        return keys


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(_NON_WORD.sub(" ", plain).split())


def person_from_traits(traits: dict[str, Any]) -> Person:
    def text(key: str) -> str:
        value = traits.get(key)
        return value if isinstance(value, str) else ""

    name = (
        text("name") or f"{text('first_name') or text('firstName')} {text('last_name') or text('lastName')}"
    )
    company = traits.get("company")
    company_name = company.get("name", "") if isinstance(company, dict) else text("company")
    return Person(
        name=fold(name),
        email=text("email").strip().lower(),
        phone=re.sub(r"\D", "", text("phone")),
        company=" ".join(_COMPANY_SUFFIX.sub(" ", fold(str(company_name))).split()),
    )


def score(a: Person, b: Person) -> tuple[float, dict[str, float]]:
    """Score 0..100 and the per-field scores it came from."""
    fields = {}
    if a.name and b.name:
        fields["name"] = fuzz.token_sort_ratio(a.name, b.name)
    if a.email and b.email:
        fields["email"] = fuzz.ratio(a.email, b.email)
    if a.phone and b.phone:
        fields["phone"] = 100.0 if a.phone[-9:] == b.phone[-9:] else fuzz.ratio(a.phone, b.phone)
    if a.company and b.company:
        fields["company"] = fuzz.token_set_ratio(a.company, b.company)
    if not fields:
        return 0.0, {}
    total = sum(WEIGHTS[k] * v for k, v in fields.items()) / sum(WEIGHTS[k] for k in fields)
    if len(fields) == 1:
        total = min(total, SINGLE_FIELD_CAP)
    return round(total, 2), {k: round(v, 2) for k, v in fields.items()}
