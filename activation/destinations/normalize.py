"""Identifier normalisation and hashing shared by the ad platforms (pure functions).

Each platform has its own rules (reference/destinations.md): Google wants phones in E.164 *with* `+`,
Meta wants digits only; Google (as configured) canonicalises Gmail addresses, Meta never does. A
function returns None when the value cannot be normalised: such values are skipped, never hashed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_PHONE_DECORATION = re.compile(r"[\s().\-/]")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_US_ZIP4 = re.compile(r"^(\d{5})-?\d{4}$")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    return bool(_HEX64.match(value))


def normalize_email(raw: str) -> str | None:
    """Trimmed and lower-cased; None unless it has exactly one `@` with text on both sides."""
    email = raw.strip().lower()
    local, sep, domain = email.partition("@")
    if not sep or not local or "." not in domain or "@" in domain or " " in email:
        return None
    return email


def canonical_gmail(email: str) -> str:
    """For gmail.com / googlemail.com: drop every dot and any `+suffix` from the local part."""
    local, _, domain = email.partition("@")
    if domain not in GMAIL_DOMAINS:
        return email
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def normalize_phone_e164(raw: str) -> str | None:
    """E.164 with a leading `+` (Google). `00` international prefixes become `+`.

    A number without `+` is assumed to already carry its country code (the identity layer stores E.164).
    """
    text = _PHONE_DECORATION.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit() or digits.startswith("0") or not 7 <= len(digits) <= 15:
        return None
    return "+" + digits


def normalize_phone_digits(raw: str) -> str | None:
    """Digits only, country code included, no `+`, no leading zeros (Meta)."""
    e164 = normalize_phone_e164(raw)
    return e164[1:] if e164 else None


def normalize_name(raw: str) -> str | None:
    """Trimmed and lower-cased, inner whitespace collapsed (Google names)."""
    name = " ".join(raw.split()).lower()
    return name or None


def strip_punctuation(raw: str) -> str:
    """Lower-cased letters, digits and single spaces only; accents (UTF-8 letters) are kept."""
    kept = "".join(ch for ch in raw.lower() if ch.isalnum() or ch.isspace())
    return " ".join(kept.split())


def normalize_meta_name(raw: str) -> str | None:
    name = strip_punctuation(unicodedata.normalize("NFC", raw))
    return name or None


def normalize_meta_city(raw: str) -> str | None:
    city = strip_punctuation(raw).replace(" ", "")
    return city or None


def normalize_meta_zip(raw: str) -> str | None:
    text = raw.strip().lower()
    us = _US_ZIP4.match(text)
    if us:
        return us.group(1)
    zip_code = text.replace(" ", "").replace("-", "")
    return zip_code or None


def normalize_country(raw: str) -> str | None:
    """ISO-3166 alpha-2, upper case (callers lower-case it for Meta)."""
    code = raw.strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def normalize_madid(raw: str) -> str | None:
    madid = raw.strip().lower()
    return madid or None
