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

# Region -> (country calling code, national trunk prefix dropped before it): the regions a rules
# document may name as `default_phone_region`. NANP numbers drop a leading 1; Italy keeps its 0.
_REGIONS = (
    "US 1 1, CA 1 1, GB 44 0, IE 353 0, DE 49 0, FR 33 0, NL 31 0, BE 32 0, CH 41 0, AT 43 0, SE 46 0,"
    " FI 358 0, AU 61 0, NZ 64 0, IN 91 0, JP 81 0, ZA 27 0,"
    " ES 34 -, IT 39 -, PT 351 -, NO 47 -, DK 45 -, PL 48 -, SG 65 -, HK 852 -"
)
PHONE_REGIONS = {
    region: (code, trunk.strip("-"))
    for region, code, trunk in (entry.split() for entry in _REGIONS.split(","))
}
_PHONE_NOISE = re.compile(r"[\s().\-/]")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_DIGIT = re.compile(r"^[0-9]")


class Identifier(NamedTuple):
    type: str
    value: str

    def label(self) -> str:
        return f"{self.type}:{self.value}"


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased; '' when it does not look like an address."""
    email = raw.strip().lower()
    return email if "@" in email.strip("@") and len(email) <= MAX_VALUE_CHARS else ""


def normalise_phone(raw: str, region: str = "") -> str:
    """E.164 (`+` then 7 to 15 digits, international `00` prefix accepted); '' otherwise.

    With a `region` (a key of PHONE_REGIONS), a number without `+` or `00` is national: its trunk
    prefix is dropped and the region's calling code put in front."""
    phone = _PHONE_NOISE.sub("", raw.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    elif region and _DIGIT.match(phone):
        code, trunk = PHONE_REGIONS[region]
        national = phone[len(trunk) :] if trunk and phone.startswith(trunk) else phone
        phone = f"+{code}{national}"
    return phone if _PHONE.match(phone) else ""


def normalise(type_: str, raw: str, phone_region: str = "") -> str:
    """The stored form of a value of the given type ('' when it is not a usable identifier)."""
    if type_ == "email":
        return normalise_email(raw)
    if type_ == "phone":
        return normalise_phone(raw, phone_region)
    value = raw.strip()
    return value if len(value) <= MAX_VALUE_CHARS else ""


def is_known_type(type_: str) -> bool:
    if type_.startswith(EXTERNAL_PREFIX):
        return len(type_) > len(EXTERNAL_PREFIX)
    return type_ in PERSON_TYPES or type_ == GROUP_TYPE


def split_identifier(text: str) -> tuple[str, str] | None:
    """(type, raw value) of `type:value` (`ext:crm:42` has type `ext:crm`); None without a known type."""
    head, sep, rest = text.partition(":")
    if head + ":" == EXTERNAL_PREFIX:
        sub, sep, rest = rest.partition(":")
        head = EXTERNAL_PREFIX + sub
    return (head, rest) if sep and is_known_type(head) else None


def parse_identifier(text: str, phone_region: str = "") -> Identifier | None:
    """`type:value` as used in the profile API path, its value normalised; None when unusable."""
    parts = split_identifier(text)
    if parts is None:
        return None
    value = normalise(parts[0], parts[1], phone_region)
    return Identifier(parts[0], value) if value else None


VALUE_FORMATS = {
    "phone": "phone:+447700900123 (E.164: + then 7 to 15 digits; 00 or, with a default_phone_region rule,"
    " a national number also work)",
    "email": "email:ann@example.com (an address with an @)",
}


def identifier_problem(text: str) -> str:
    """Why `text` is not a usable identifier, naming its type when the type is known."""
    parts = split_identifier(text)
    if parts is None:
        return (
            "type is user_id, anonymous_id, email, phone, device_id, advertising_id, group_id, record"
            " or ext:<name>"
        )
    type_ = parts[0]
    expected = VALUE_FORMATS.get(type_, f"{type_}:<value> (1 to {MAX_VALUE_CHARS} characters)")
    return f"not a valid {type_} value: expected {expected}"


def profile_id_for(identifier: Identifier) -> str:
    """The profile id a component gets from its canonical identifier."""
    digest = hashlib.sha256(identifier.label().encode()).hexdigest()
    return f"p_{digest[:24]}"
