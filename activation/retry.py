"""The one signal a job gives its queue besides success and failure."""

from __future__ import annotations


class RetryLater(Exception):
    """The job cannot make progress yet (a lock is held elsewhere, a platform asked us to wait):
    the worker puts it back on the queue to run again after `defer_s` seconds."""

    def __init__(self, reason: str, defer_s: float) -> None:
        super().__init__(reason)
        self.defer_s = defer_s
