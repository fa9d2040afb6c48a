"""Credentials at rest: AES-GCM with an HKDF-derived key, bound to the destination id."""

from __future__ import annotations

import pytest

from activation.sync.crypto import PREFIX, CredentialCipher, CredentialsUnreadable

KEY = "a-long-enough-secret-key-0001"


def test_round_trip_and_ciphertext_hides_values() -> None:
    cipher = CredentialCipher(KEY)
    sealed = cipher.encrypt({"api_key": "canary-value-123", "other": "x"}, "dst_1")
    assert sealed.startswith(PREFIX) and "canary" not in sealed and "api_key" not in sealed
    assert cipher.decrypt(sealed, "dst_1") == {"api_key": "canary-value-123", "other": "x"}
    assert cipher.encrypt({"a": "b"}, "dst_1") != cipher.encrypt({"a": "b"}, "dst_1")
    assert cipher.decrypt("", "dst_1") == {}
    assert "KEY" not in repr(cipher) and KEY not in repr(cipher)


def test_wrong_key_other_row_or_tampering_cannot_decrypt() -> None:
    sealed = CredentialCipher(KEY).encrypt({"token": "t"}, "dst_1")
    with pytest.raises(CredentialsUnreadable):
        CredentialCipher(KEY + "x").decrypt(sealed, "dst_1")
    with pytest.raises(CredentialsUnreadable):
        CredentialCipher(KEY).decrypt(sealed, "dst_2")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(CredentialsUnreadable):
        CredentialCipher(KEY).decrypt(tampered, "dst_1")
    with pytest.raises(CredentialsUnreadable):
        CredentialCipher(KEY).decrypt("plain-text", "dst_1")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        CredentialCipher("short")
