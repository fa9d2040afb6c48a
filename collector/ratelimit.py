"""Per-source rate limiting: a token bucket per source, in this collector process.

The limit is per process: with N collectors behind a load balancer a source gets up to N times
its limit. That keeps the hot path free of a network round trip; the limit exists to stop a
runaway client, not to meter exactly.
"""

from __future__ import annotations

import math
import time


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, updated_at)

    def allow(self, source_id: str, per_s: int, cost: int = 1) -> float:
        """0.0 if allowed, else the seconds to wait before retrying (for Retry-After)."""
        if per_s <= 0:
            return 0.0
        now = time.monotonic()
        burst = float(per_s)  # one second's worth of burst
        tokens, updated = self._buckets.get(source_id, (burst, now))
        tokens = min(burst, tokens + (now - updated) * per_s)
        if tokens >= cost:
            self._buckets[source_id] = (tokens - cost, now)
            return 0.0
        self._buckets[source_id] = (tokens, now)
        return max(1.0, math.ceil((cost - tokens) / per_s))
