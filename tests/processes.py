"""Real Magpie processes for tests: `magpie clickhouse` (the store the whole suite queries over HTTP)
and the split commands (`magpie collector`, `api`, `worker`) of server mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clickhouse.client import ClickHouseTarget
from tests.server import ADMIN_TOKEN, ROOT, free_port

SECRET_KEY = "dGVzdC1zZWNyZXQta2V5LTAxMjM0NTY3ODlhYmNkZWY="


class MagpieProcess:
    """One `magpie <command>` child with its own log file; `start()` waits for `ready_path`."""

    def __init__(
        self, command: str, data_dir: Path, env: dict[str, str], ready_path: str = "/readyz"
    ) -> None:
        self.command, self.data_dir, self.ready_path = command, data_dir, ready_path
        self.port = int(env.get("MAGPIE_PORT") or free_port())
        self.env = {**os.environ, "MAGPIE_DATA_DIR": str(data_dir), "MAGPIE_PORT": str(self.port), **env}
        self.log_path = data_dir.parent / f"{data_dir.name}.{command}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90) -> MagpieProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "magpie.cli", self.command], env=self.env, stdout=log, stderr=log, cwd=ROOT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"magpie {self.command} exited: {self.log()[-3000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"magpie {self.command} not ready in {timeout_s}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 60) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


class StoreProcess(MagpieProcess):
    """`magpie clickhouse` on a free port: chdb under <data dir>/clickhouse behind ClickHouse's HTTP API."""

    def __init__(self, data_dir: Path, password: str = "") -> None:
        port = free_port()
        env = {"MAGPIE_CLICKHOUSE_PORT": str(port), "MAGPIE_CLICKHOUSE_HOST": "127.0.0.1"}
        if password:
            env["MAGPIE_CLICKHOUSE_PASSWORD"] = password
        super().__init__("clickhouse", data_dir, {**env, "MAGPIE_PORT": str(port)}, ready_path="/ping")
        self.password = password

    @property
    def clickhouse_url(self) -> str:
        auth = f"default:{self.password}@" if self.password else ""
        return f"http://{auth}127.0.0.1:{self.port}/magpie"

    @property
    def target(self) -> ClickHouseTarget:
        return ClickHouseTarget.from_url(self.clickhouse_url)


def server_mode_env(store: StoreProcess, redis_url: str) -> dict[str, str]:
    """What every split process of one deployment shares."""
    return {
        "MAGPIE_CLICKHOUSE_URL": store.clickhouse_url,
        "MAGPIE_REDIS_URL": redis_url,
        "MAGPIE_SECRET_KEY": SECRET_KEY,
        "MAGPIE_ADMIN_TOKEN": ADMIN_TOKEN,
        "MAGPIE_FLUSH_INTERVAL_MS": "50",
        "MAGPIE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.1,localhost",
    }
