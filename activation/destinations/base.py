"""The destination plug-in point: value types, the error vocabulary and the `Destination` protocol.

The sync engine hands a destination a `SyncBatch` (members who entered and exited one audience) and gets
back a `SendResult` or one of these errors: `RetryableError` (back off, honour `retry_after_s`),
`RejectedError` (the platform refused the request's content, which one record can cause: the engine
splits the batch to find that record), `PermanentError` (the destination itself is unusable: the run
fails) or `AuthExpiredError` (refresh the token once, then retry; without `SupportsTokenRefresh` it is
permanent). Sends must be idempotent: the engine re-sends halves of a batch to isolate a record.
Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from activation.net import HttpClient

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
Config = Mapping[str, object]


class DestinationError(Exception):
    """Base of the error vocabulary. `reason` is safe to log: it never contains credentials."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(DestinationError):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(DestinationError):
    """Retrying will not help and the whole destination is affected (auth, config, a missing list)."""


class RejectedError(PermanentError):
    """The platform refused this request's content (HTTP 400/422-style validation), possibly because of
    a single record. The engine re-sends the batch in halves until the refused records are isolated."""


class AuthExpiredError(DestinationError):
    pass


class Credentials(Mapping[str, str]):
    """Secret values by name. repr/str show only the names, so a logged object leaks nothing."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials(names={sorted(self._values)!r})"

    __str__ = __repr__

    def require(self, name: str) -> str:
        value = self._values.get(name)
        if not value:
            raise PermanentError(f"missing credential {name!r}")
        return value

    def updated(self, changes: Mapping[str, str]) -> Credentials:
        return Credentials({**self._values, **changes})


@dataclass(frozen=True)
class Member:
    """One profile as the sync engine sees it. Identifier values are raw (normalised per platform)."""

    profile_id: str
    identifiers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    traits: Mapping[str, JSONValue] = field(default_factory=dict)

    def values(self, kind: str) -> list[str]:
        """Non-empty values of an identifier kind (email, phone, user_id, advertising_id, first_name…)."""
        return [v for v in self.identifiers.get(kind, ()) if isinstance(v, str) and v.strip()]

    def first(self, kind: str, *trait_names: str) -> str | None:
        """First identifier value of `kind`, else the first string trait among `trait_names`."""
        found = self.values(kind)
        if found:
            return found[0]
        for name in trait_names:
            value = self.traits.get(name)
            if isinstance(value, str) and value.strip():
                return value
        return None


@dataclass(frozen=True)
class SyncBatch:
    audience_key: str
    entered: Sequence[Member] = ()
    exited: Sequence[Member] = ()
    batch_id: str = ""


@dataclass(frozen=True)
class RecordFailure:
    profile_id: str
    reason: str
    permanent: bool


@dataclass(frozen=True)
class SendResult:
    """`unattributed_invalid`: rows the platform counted as invalid without saying whose (Meta). The
    engine attributes them by re-sending halves of the batch."""

    added: int = 0
    removed: int = 0
    failures: tuple[RecordFailure, ...] = ()
    unattributed_invalid: int = 0

    def merge(self, other: SendResult) -> SendResult:
        return SendResult(
            self.added + other.added,
            self.removed + other.removed,
            self.failures + other.failures,
            self.unattributed_invalid + other.unattributed_invalid,
        )


class Destination(Protocol):
    """What every destination type provides. Instances are stateless; REGISTRY maps type → instance."""

    @property
    def type(self) -> str: ...

    def validate_config(self, config: Config) -> dict[str, str]:
        """Field errors (field → message); empty when the config is usable."""
        ...

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]: ...

    def endpoint_urls(self, config: Config) -> list[str]:
        """Every base URL this config will contact, for the SSRF check at create, update and test."""
        ...

    def batch_limit(self, config: Config) -> int:
        """Members per `send` the engine should aim for (send still splits larger batches)."""
        ...

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult: ...


@runtime_checkable
class SupportsTokenRefresh(Protocol):
    async def refresh_token(
        self, session: HttpClient, credentials: Credentials, config: Config
    ) -> Credentials:
        """New credentials (to be stored encrypted) after an AuthExpiredError."""
        ...


@runtime_checkable
class SupportsConnectionTest(Protocol):
    async def test_connection(self, session: HttpClient, credentials: Credentials, config: Config) -> None:
        """Returns when credentials and target list work; raises a DestinationError otherwise."""
        ...


@runtime_checkable
class SupportsDeletion(Protocol):
    async def delete_member(
        self, session: HttpClient, member: Member, credentials: Credentials, config: Config
    ) -> None:
        """Calls the platform's privacy deletion API for one person."""
        ...


@dataclass(frozen=True)
class Erasure:
    """What a platform's own erasure call did: `erased` (the platform deleted the person), `notified`
    (a receiver was told, e.g. a webhook) or `skipped` (nothing this platform can erase by)."""

    status: str
    detail: str = ""


@runtime_checkable
class SupportsErasure(Protocol):
    async def erase(
        self,
        session: HttpClient,
        credentials: Credentials,
        config: Config,
        identifiers: Mapping[str, Sequence[str]],
    ) -> Erasure:
        """Calls the platform's privacy erasure API for one person (identifier type → raw values).

        Raises the usual vocabulary: RetryableError (retried with backoff), AuthExpiredError (one
        token refresh), PermanentError. A person the platform does not know is not an error."""
        ...


DestinationType = Destination
