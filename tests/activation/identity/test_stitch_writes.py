"""A stitch chain's document writes (identity/jobs.Writes), on real Redis: they never hold a tick up,
ticks that end while one runs are merged into the next write, and a failed write fails the chain."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from activation.identity.identifiers import Identifier
from activation.identity.jobs import Changes, Writes
from activation.services import Services


class Recorder:
    def __init__(self) -> None:
        self.calls: list[set[str]] = []
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(
        self, profile_ids: Collection[str], identifiers: Collection[Any] = (), everything: bool = False
    ) -> None:
        self.calls.append(set(profile_ids))
        await self.release.wait()
        if self.fail:
            raise ConnectionError("store unreachable")


def changes(*profiles: str) -> Changes:
    return Changes(frozenset(profiles), frozenset({Identifier("user_id", p) for p in profiles}), False)


async def no_rest(seconds: float) -> None:
    await asyncio.sleep(0)


async def test_ticks_that_end_during_a_write_are_merged_into_the_next(redis: Any) -> None:
    recorder = Recorder()
    writes = Writes(Services(ch=None, redis=redis, profiles_changed=recorder, sleep=no_rest))  # type: ignore[arg-type]
    writes.add(changes("p1", "p2"))
    await asyncio.sleep(0.05)
    writes.add(changes("p2", "p3"))  # while the first write runs: returns at once
    writes.add(changes("p4"))
    assert recorder.calls == [{"p1", "p2"}]
    recorder.release.set()
    await writes.drain()
    assert recorder.calls == [{"p1", "p2"}, {"p2", "p3", "p4"}]  # one write for the two ticks


async def test_a_failed_write_fails_the_next_tick(redis: Any) -> None:
    recorder = Recorder()
    recorder.fail = True
    writes = Writes(Services(ch=None, redis=redis, profiles_changed=recorder, sleep=no_rest))  # type: ignore[arg-type]
    writes.add(changes("p1"))
    recorder.release.set()
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionError):
        writes.add(changes("p2"))
