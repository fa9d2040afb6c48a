"""What a platform puller hands the pull loop: pages of records, each with the cursor after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from activation.crm.client import CrmClient
from activation.crm.records import CrmRecord, ObjectSpec
from activation.destinations.base import Config, Credentials
from activation.net import HttpClient


@dataclass(frozen=True)
class Page:
    """Records read, ids deleted in the CRM, (loser, survivor) merges; `cursor` is the position after
    this page, saved once the page is applied, so a crash re-reads at most this page."""

    cursor: dict[str, Any]
    records: tuple[CrmRecord, ...] = ()
    deleted: tuple[str, ...] = ()
    merges: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


class Puller(Protocol):
    def pages(self, spec: ObjectSpec, cursor: dict[str, Any], now_ms: int) -> AsyncIterator[Page]: ...


class Platform(Protocol):
    """A CRM source type: config and credential checks, endpoints (SSRF), objects, and its puller."""

    @property
    def type(self) -> str: ...

    def validate_config(self, config: Config) -> dict[str, str]: ...

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]: ...

    def endpoint_urls(self, config: Config) -> list[str]: ...

    def objects(self, config: Config) -> list[ObjectSpec]: ...

    def every_s(self, config: Config) -> int: ...

    def client(
        self, session: HttpClient, credentials: Credentials, config: Config, **kw: Any
    ) -> CrmClient: ...

    def puller(self, client: CrmClient, config: Config) -> Puller: ...


def ms_of(value: Any) -> int:
    """Epoch milliseconds of an ISO 8601 text, an epoch-ms number/text or a datetime; 0 when unknown."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            return ms_of(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return 0
    return 0


def iso_of(ms: int) -> str:
    """Salesforce's datetime literal form: `2026-01-01T00:00:00.000Z` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def props(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
