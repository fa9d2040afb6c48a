"""Forwarding settings: plain attributes with units in their names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForwardSettings:
    poll_s: float = 0.1  # how often the reader looks for new events
    reader_run_s: float = 10.0  # one reader job loops this long, then hands over to the next
    overlap_s: float = 3.0  # re-read window behind the watermark (inserts become visible late)
    page_events: int = 5000  # events read per query
    catchup_pages: int = 4  # pages per pass re-read for connections catching up (catchup.py)
    routes_ttl_s: float = 1.0  # how long the reader caches the connection list
    deliver_run_s: float = 60.0  # one delivery job drains its queue this long at most
    idle_s: float = 1.0  # a drained delivery job waits this long for more before it exits
    queue_peek: int = 2000  # events read from the queue per request plan
    max_queue_events: int = 1_000_000  # beyond this a destination's new events are dead-lettered
    split_sends: int = 64  # extra sends per batch to isolate events in a refused request
    in_job_retry_s: float = 30.0  # longer waits release the job and defer it instead


FORWARD = ForwardSettings()
