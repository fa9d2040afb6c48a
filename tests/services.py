"""Job contexts for tests: `ctx["services"]` as the worker builds it, with the parts a test needs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from activation.services import Services


def job_ctx(ch: Any, redis: Any = None, **fields: Any) -> dict[str, Any]:
    return {"services": Services(ch=ch, redis=redis, **fields)}


def changed(ctx: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The same context with some services replaced (e.g. `sync=` settings, `metrics=`)."""
    return {**ctx, "services": replace(ctx["services"], **fields)}
