"""Keep secrets out of anything stored or logged: credential values are replaced by `***`."""

from __future__ import annotations

from collections.abc import Iterable

MIN_SECRET_CHARS = 4
MAX_ERROR_CHARS = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (longest first) replaced, truncated to MAX_ERROR_CHARS."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:MAX_ERROR_CHARS]
