"""Identifiers: typed values, their normalisation and the deterministic profile id they give.

The SQL that extracts identifiers from events (`links.py`) mirrors `normalise_email` and
`normalise_phone`; a test keeps the two in agreement.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

HARD_TYPES = frozenset({"user_id", "email", "phone"})
PERSON_TYPES = ("user_id", "email", "phone", "advertising_id", "device_id", "anonymous_id", "record")
ALIAS_TYPE = "previous_id"
GROUP_TYPE = "group_id"
EXTERNAL_PREFIX = "ext:"
MAX_VALUE_CHARS = 256

_PHONE_NOISE = re.compile(r"[\s().\-/]")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Identifier(NamedTuple):
    type: str
    value: str

    def label(self) -> str:
        return f"{self.type}:{self.value}"


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased; '' when it does not look like an address."""
    email = raw.strip().lower()
    return email if "@" in email.strip("@") and len(email) <= MAX_VALUE_CHARS else ""


def normalise_phone(raw: str) -> str:
    """E.164 (`+` then 7 to 15 digits, international `00` prefix accepted); '' otherwise."""
    phone = _PHONE_NOISE.sub("", raw.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    return phone if _PHONE.match(phone) else ""


def normalise(type_: str, raw: str) -> str:
    """The stored form of a value of the given type ('' when it is not a usable identifier)."""
    if type_ == "email":
        return normalise_email(raw)
    if type_ == "phone":
        return normalise_phone(raw)
    value = raw.strip()
    return value if len(value) <= MAX_VALUE_CHARS else ""


def is_known_type(type_: str) -> bool:
    if type_.startswith(EXTERNAL_PREFIX):
        return len(type_) > len(EXTERNAL_PREFIX)
    return type_ in PERSON_TYPES or type_ == GROUP_TYPE


def parse_identifier(text: str) -> Identifier | None:
    """`type:value` as used in the profile API path (`ext:crm:42` has type `ext:crm`)."""
    head, sep, rest = text.partition(":")
    if head + ":" == EXTERNAL_PREFIX:
        sub, sep, rest = rest.partition(":")
        head = EXTERNAL_PREFIX + sub
    if not sep or not is_known_type(head):
        return None
    value = normalise(head, rest)
    return Identifier(head, value) if value else None


def profile_id_for(identifier: Identifier) -> str:
    """The profile id a component gets from its canonical identifier."""
    digest = hashlib.sha256(identifier.label().encode()).hexdigest()
    return f"p_{digest[:24]}"
