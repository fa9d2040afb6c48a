"""Run the real `magpie serve` process for end-to-end tests, and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
GEOIP_DIR = ROOT.parent / "shared" / "geoip"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `magpie serve` on a data dir; `start()`, `stop()`, `kill()` and helpers over HTTP."""

    def __init__(
        self, data_dir: Path, *, own_group: bool = False, prefix: tuple[str, ...] = (), **env: str
    ) -> None:
        self.data_dir = data_dir
        self.own_group = own_group  # its own process group, so a test can signal the whole group
        self.prefix = prefix  # e.g. ("taskset", "-c", "0"): every child inherits it
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = ADMIN_TOKEN
        self.fault_file = data_dir.parent / f"{data_dir.name}.clickhouse-down"
        self.env = {
            **os.environ,
            "MAGPIE_DATA_DIR": str(data_dir),
            "MAGPIE_PORT": str(self.port),
            "MAGPIE_ADMIN_TOKEN": ADMIN_TOKEN,
            "MAGPIE_FAULT_FILE": str(self.fault_file),
            "MAGPIE_GEOIP_CITY_DB": str(GEOIP_DIR / "GeoIP2-City-Test.mmdb"),
            "MAGPIE_GEOIP_ASN_DB": str(GEOIP_DIR / "GeoLite2-ASN-Test.mmdb"),
            "MAGPIE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.1,localhost",
            "MAGPIE_FLUSH_INTERVAL_MS": "50",
            # each test server its own store port; one web process keeps the suite light (tests
            # of several web processes ask for more)
            "MAGPIE_CLICKHOUSE_PORT": str(free_port()),
            "MAGPIE_WEB_PROCESSES": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout_s: float = 90) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "magpie.cli", "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            start_new_session=self.own_group,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout_s}s: {self.log()[-3000:]}")

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

    def children(self) -> dict[str, int]:
        """The supervisor's children as it last recorded them (name → pid)."""
        path = self.data_dir / "run" / "children.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def kill(self, timeout_s: float = 15) -> None:
        """kill -9 the supervisor; its children die with it (PR_SET_PDEATHSIG): wait until they have."""
        assert self.process is not None
        pids = [pid for name, pid in self.children().items() if name != "supervisor"]
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + timeout_s
        while any(alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"children outlived the killed supervisor: {pids}")
            time.sleep(0.05)

    # --- helpers over HTTP -------------------------------------------------------------------
    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, "/admin/v1" + path, headers=self.auth, **kwargs)

    def create_source(self, name: str, **options: Any) -> dict[str, Any]:
        response = self.admin("POST", "/sources", json={"name": name, **options})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def events(self, source_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Every stored event of the source, newest first, walking all cursor pages."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            response = self.admin("GET", f"/sources/{source_id}/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            out += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def rejected(self, source_id: str) -> list[dict[str, Any]]:
        response = self.admin("GET", f"/sources/{source_id}/rejected", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def wait_for_events(self, source_id: str, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events(source_id)
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.1)

    def set_clickhouse_down(self, down: bool) -> None:
        if down:
            self.fault_file.write_text("down")
        else:
            self.fault_file.unlink(missing_ok=True)

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{name}{{{wanted}}} " if wanted else f"{name} "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return 0.0

    def wait_for_ids(
        self, source_id: str, message_ids: list[str], timeout_s: float = 15
    ) -> list[dict[str, Any]]:
        """Poll the debugger until every messageId is stored (or time runs out); return all events."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events(source_id)
            if {e["messageId"] for e in events} >= set(message_ids) or time.monotonic() > deadline:
                return events
            time.sleep(0.1)
