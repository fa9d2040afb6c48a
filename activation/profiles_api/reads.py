"""The profile document read now (no stored copy): the identifier's profile (identity.lookup), then
its document built by profiles_api.documents (one query), served with the live audiences' names.

The Profile API reads a stored document first (documents.stored, one primary-key read) and comes
here only when there is none it may serve; exports and tests read here directly.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from activation.identity.identifiers import Identifier
from activation.identity.lookup import lookup
from activation.profiles_api import documents


def document(ch: Client, identifier: Identifier) -> dict[str, Any] | None:
    """The identifier's profile document, or None (unknown, deleted, not yet written)."""
    profile_id = lookup(ch, identifier)
    return profile_document(ch, profile_id) if profile_id else None


def profile_document(ch: Client, profile_id: str) -> dict[str, Any] | None:
    """The document of a live, complete profile by id (no lookup), or None."""
    built = documents.build(ch, [profile_id]).get(profile_id)
    return documents.served(built, documents.audience_names(ch)) if built else None
