"""Sync engine settings: plain attributes with units in their names."""

from __future__ import annotations

from dataclasses import dataclass, field

from activation.sync.delivery import RetryPolicy


@dataclass(frozen=True)
class SyncSettings:
    request_timeout_s: float = 30.0
    lock_ttl_s: float = 60.0
    lock_wait_s: float = 30.0
    batches_per_s: int = 10
    max_batch_members: int = 10_000
    # extra sends a run may spend re-sending halves of refused batches to isolate the refused records
    split_sends_per_run: int = 200
    retry: RetryPolicy = field(default_factory=RetryPolicy)
