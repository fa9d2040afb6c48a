"""Normalisation and hashing against known vectors (digests computed independently with sha256sum)."""

from __future__ import annotations

import pytest

from activation.destinations.normalize import (
    canonical_gmail,
    normalize_email,
    normalize_meta_name,
    normalize_meta_zip,
    normalize_phone_digits,
    normalize_phone_e164,
    sha256_hex,
)

TEST_AT_EXAMPLE = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
ALEX2 = "97a24240e3c76dfc0abdb63a3d73468ff8d94b81fd3dc084cc32994ba4fad7fe"
JOHNSMITH_GMAIL = "3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586"
PLUS_E164 = "d360a79e746532a6a1e7b8164440b04cdd8797e23126f7a4de7a4b67fdcdba98"
DIGITS_ONLY = "4602031721d76ab01f4959d86fda7263b6fbbcb7457b7383de726a3b9137fc9d"


def test_email_is_trimmed_and_lowercased_before_hashing() -> None:
    email = normalize_email("  Test@Example.COM ")
    assert email == "test@example.com"
    assert sha256_hex(email) == TEST_AT_EXAMPLE


def test_non_gmail_dots_are_kept() -> None:
    assert sha256_hex(canonical_gmail("alex.2@example.com")) == ALEX2


@pytest.mark.parametrize(
    "raw", ["John.Smith@gmail.com", "johnsmith+promo@gmail.com", "j.o.h.n.smith+x@gmail.com"]
)
def test_gmail_dots_and_plus_suffix_are_removed(raw: str) -> None:
    email = normalize_email(raw)
    assert email is not None
    assert sha256_hex(canonical_gmail(email)) == JOHNSMITH_GMAIL


def test_googlemail_gets_the_gmail_rule_but_keeps_its_domain() -> None:
    assert canonical_gmail("a.b+c@googlemail.com") == "ab@googlemail.com"


@pytest.mark.parametrize(
    "raw", ["no-at-sign", "@example.com", "a@b", "a b@example.com", "a@@example.com", ""]
)
def test_invalid_emails_are_rejected(raw: str) -> None:
    assert normalize_email(raw) is None


@pytest.mark.parametrize("raw", ["+1 (212) 565-0000", "+1.212.565.0000", "001 212 565 0000", "12125650000"])
def test_google_phone_is_e164_with_plus(raw: str) -> None:
    phone = normalize_phone_e164(raw)
    assert phone == "+12125650000"
    assert sha256_hex(phone) == PLUS_E164


def test_meta_phone_is_digits_without_plus() -> None:
    phone = normalize_phone_digits("+1 (212) 565-0000")
    assert phone == "12125650000"
    assert sha256_hex(phone) == DIGITS_ONLY


@pytest.mark.parametrize("raw", ["0123", "+0 212 565 0000", "call me", "+1234", "+1234567890123456"])
def test_unusable_phones_are_skipped(raw: str) -> None:
    assert normalize_phone_e164(raw) is None


def test_meta_name_strips_punctuation_and_keeps_accents() -> None:
    assert normalize_meta_name("  O'Brien-Émile. ") == "obrienémile"


@pytest.mark.parametrize(
    ("raw", "expected"), [("94045-1234", "94045"), ("SW1A 1AA", "sw1a1aa"), ("K1A-0B1", "k1a0b1")]
)
def test_meta_zip(raw: str, expected: str) -> None:
    assert normalize_meta_zip(raw) == expected
