"""Shared fixtures: a real `magpie clickhouse` store process for in-process tests, and the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from clickhouse.client import ClickHouseTarget, connect
from clickhouse.migrations import migrate
from tests.processes import StoreProcess
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
GEOIP_DIR = ROOT.parent / "shared" / "geoip"


@pytest.fixture(scope="session")
def ch_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    """The session's ClickHouse: a real `magpie clickhouse` process, reached over HTTP like in production."""
    store = StoreProcess(tmp_path_factory.mktemp("store") / "data").start()
    yield store
    store.stop()


@pytest.fixture(scope="session")
def ch_target(ch_store: StoreProcess) -> ClickHouseTarget:
    """The migrated `magpie` database of the session's store."""
    target = ch_store.target
    migrate(target)
    return target


@pytest.fixture(scope="session")
def ch(ch_target: ClickHouseTarget) -> Iterator[Client]:
    """A clickhouse-connect client on the migrated `magpie` database of the embedded ClickHouse."""
    client = connect(ch_target)
    yield client
    client.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real `magpie serve` process, shared by the end-to-end tests of a session."""
    process = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield process
    process.stop()
