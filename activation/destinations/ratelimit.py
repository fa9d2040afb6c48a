"""Reading throttling headers that name a reset moment (SendGrid, Braze) into a wait in seconds (pure)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from activation.destinations.http import parse_retry_after

EPOCH_THRESHOLD_S = 1_000_000_000  # values this large are Unix times, smaller ones are delta-seconds


def reset_wait_s(
    headers: Mapping[str, str], now_s: float | None = None, *, floor_s: float = 1.0
) -> float | None:
    """`Retry-After` when present; else `X-RateLimit-Reset` (Unix epoch seconds per SendGrid's rate-limit
    page, also sent by Braze) minus now, at least `floor_s`; None when neither header is usable."""
    retry_after = parse_retry_after(headers.get("retry-after"), now_s)
    if retry_after is not None:
        return retry_after
    raw = (headers.get("x-ratelimit-reset") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    if value >= EPOCH_THRESHOLD_S:
        value -= time.time() if now_s is None else now_s
    return max(floor_s, value)
