"""A throwaway embedded store for benchmarks and scripts: `magpie clickhouse` on a free loopback port
over a data directory, as a context manager yielding its (migrated) target."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from clickhouse.client import ClickHouseTarget
from clickhouse.migrations import migrate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running_store(data_dir: Path, timeout_s: float = 120) -> Iterator[ClickHouseTarget]:
    port = _free_port()
    env = {**os.environ, "MAGPIE_DATA_DIR": str(data_dir), "MAGPIE_CLICKHOUSE_PORT": str(port)}
    env.pop("MAGPIE_CLICKHOUSE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "magpie.cli", "clickhouse"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("magpie clickhouse did not start")
            time.sleep(0.1)
        target = ClickHouseTarget.from_url(url + "/magpie")
        migrate(target)
        yield target
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
