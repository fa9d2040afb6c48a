"""What a failed deletion keeps so its destination step can be re-run (POST .../retry), sealed.

When a destination step fails, the person's tables are already forgotten: the members each
destination must still lose (identifiers and traits as they were sent) and the person's
identifiers exist nowhere else. They are kept in the request's `identifiers` column, encrypted
with AES-GCM under a key derived from MAGPIE_SECRET_KEY and bound to the request id (the
credentials cipher), so the table holds no readable identifier while the request waits; the
version written when the request completes blanks it, and older versions are deleted.
"""

from __future__ import annotations

from typing import Any

import orjson

from activation.privacy.person import Person
from activation.sync.crypto import PREFIX, CredentialCipher

SEALED = PREFIX


def is_sealed(text: str) -> bool:
    return text.startswith(SEALED)


def seal(secret_key: str, request_id: str, person: Person, retry: dict[str, Any]) -> str:
    pairs = [[i.type, i.value] for i in person.sorted_identifiers()]
    state = {"identifiers": pairs, "profiles": sorted(person.profile_ids), "retry": retry}
    return CredentialCipher(secret_key).encrypt({"state": orjson.dumps(state).decode()}, _bound(request_id))


def unseal(secret_key: str, request_id: str, text: str) -> dict[str, Any]:
    opened = CredentialCipher(secret_key).decrypt(text, _bound(request_id))
    state: dict[str, Any] = orjson.loads(opened["state"])
    return state


def _bound(request_id: str) -> str:
    return f"privacy-deletion:{request_id}"
