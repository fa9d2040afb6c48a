"""Credentials at rest: AES-256-GCM with a key derived by HKDF-SHA256 from MAGPIE_SECRET_KEY.

Each ciphertext is bound to its destination id (associated data), so a value copied to another row
does not decrypt. The format is `v1.<base64url(nonce || ciphertext)>`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1."
_SALT = b"magpie/destination-credentials"
_INFO = b"aes-256-gcm v1"
_NONCE_BYTES = 12


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted (wrong MAGPIE_SECRET_KEY or a tampered row)."""


class CredentialCipher:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 16:
            raise ValueError("MAGPIE_SECRET_KEY must be at least 16 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "CredentialCipher()"

    def encrypt(self, values: Mapping[str, str], bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(dict(values)), bound_to.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, bound_to: str) -> dict[str, str]:
        if not token:
            return {}
        if not token.startswith(PREFIX):
            raise CredentialsUnreadable("unknown credentials format")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except (ValueError, InvalidTag):
            raise CredentialsUnreadable("credentials cannot be decrypted with this secret key") from None
        values = orjson.loads(plain)
        return {str(k): str(v) for k, v in values.items()}
