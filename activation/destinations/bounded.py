"""Run an async action over items with at most `limit` in flight; the first error stops the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def run_bounded(items: Sequence[T], action: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """Results in item order. After the first exception no new item starts; running ones finish, then
    that exception is re-raised (so a 429 stops the batch instead of hammering the platform)."""
    done: dict[int, R] = {}
    cursor = iter(range(len(items)))
    errors: list[Exception] = []

    async def worker() -> None:
        for index in cursor:
            if errors:
                return
            try:
                done[index] = await action(items[index])
            except Exception as exc:
                errors.append(exc)
                return

    await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(items))))))
    if errors:
        raise errors[0]
    return [done[i] for i in range(len(items))]
