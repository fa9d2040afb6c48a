# ruff: noqa: F811  (the world fixture is imported by name and then requested as a parameter)
"""Who writes the Profile API's stored documents (profiles_api/documents.py), on real chdb and Redis:
the writer the jobs call, the rebuild after a new cache generation, and what a failed write does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from activation.identity.cache import ProfileCache
from activation.identity.identifiers import Identifier
from activation.identity.stitching import stitch_incremental
from activation.profiles_api import documents
from activation.profiles_api.documents import (
    REBUILD_JOB,
    DocumentWriter,
    ensure_profile_documents,
    rebuild_profile_documents,
)
from tests.activation.identity.conftest import World, world  # noqa: F401
from tests.services import job_ctx


class Queue:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, str]] = []

    async def __call__(self, name: str, *args: Any, job_id: str = "", **kwargs: Any) -> bool:
        self.jobs.append((name, job_id))
        return True


def people(world: World, count: int) -> tuple[list[str], list[Identifier]]:
    world.insert(*(world.event("identify", n, user=f"u{n}", traits={"n": n}) for n in range(count)))
    report = stitch_incremental(world.ch, datetime.now(UTC))
    users = [Identifier("user_id", world.id(f"u{n}")) for n in range(count)]
    return sorted(report.changed_profiles), users


async def test_a_new_generation_is_not_served_until_the_rebuild_job_stores_it_again(
    ch: Client, world: World, redis: Any
) -> None:
    profiles, users = people(world, 3)
    cache, queue = ProfileCache(redis), Queue()
    writer = DocumentWriter(ch, cache, queue)
    await writer(profiles, ())
    assert all(documents.stored(ch, user, 0) is not None for user in users)
    await cache.invalidate_all()  # a full restitch moved to generation 1
    await writer((), (), everything=True)
    assert queue.jobs == [(REBUILD_JOB, f"{REBUILD_JOB}:1")]
    assert all(documents.stored(ch, user, 1) is None for user in users)  # the old rows: not served
    result = await rebuild_profile_documents(job_ctx(ch, redis))
    assert result["generation"] == 1 and result["profiles"] >= 3 and "stopped" not in result
    for n, user in enumerate(users):
        stored = documents.stored(ch, user, 1)
        assert stored is not None and stored["traits"]["n"]["value"] == n


class Broken:
    """A ClickHouse client whose reads fail (the store went away mid-write)."""

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("store unreachable")


async def test_a_failed_write_stops_every_stored_document_being_served_and_queues_a_rebuild(
    ch: Client, world: World, redis: Any
) -> None:
    profiles, users = people(world, 2)
    cache, queue = ProfileCache(redis), Queue()
    await DocumentWriter(ch, cache, queue)(profiles, ())
    assert documents.stored(ch, users[0], 0) is not None
    with pytest.raises(ConnectionError):
        await DocumentWriter(Broken(), cache, queue)(profiles, ())  # type: ignore[arg-type]
    assert await cache.generation() == 1  # what was stored may be stale now: none of it is served
    assert documents.stored(ch, users[0], 1) is None
    assert queue.jobs == [(REBUILD_JOB, f"{REBUILD_JOB}:1")]


async def test_at_start_the_worker_queues_a_rebuild_only_when_no_document_of_the_generation_exists(
    ch: Client, world: World, redis: Any
) -> None:
    profiles, _ = people(world, 1)
    cache, queue = ProfileCache(redis), Queue()
    for _ in range(3):  # a generation no document was built in (an upgrade to 0018, a Redis flushed)
        await cache.invalidate_all()
    generation = await cache.generation()
    ctx = job_ctx(ch, redis, enqueue=queue)
    assert (await ensure_profile_documents(ctx))["rebuild"] is True
    assert queue.jobs == [(REBUILD_JOB, f"{REBUILD_JOB}:{generation}")]
    await DocumentWriter(ch, cache)(profiles, ())
    assert (await ensure_profile_documents(ctx))["rebuild"] is False
    assert len(queue.jobs) == 1
