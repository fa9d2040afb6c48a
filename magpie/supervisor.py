"""`magpie serve`: a supervisor of real processes, one shape for every deployment.

Start order: the embedded ClickHouse (`magpie clickhouse`, unless MAGPIE_CLICKHOUSE_URL) and
redis-server (unless MAGPIE_REDIS_URL); migrations and the first-start bootstrap (admin token, default
source, banner) run once, here; then MAGPIE_WEB_PROCESSES web processes sharing one listening socket
(each serves the tracking, admin and Profile APIs and drains its own spool) and one worker (stitching,
audiences, syncs). Every child reaches ClickHouse over HTTP and Redis over its socket, exactly as in
server mode. A child that dies is logged and restarted with backoff.

Stop (SIGTERM or Ctrl-C): the web processes go first — readiness 503, stop accepting, finish requests,
flush their spools into ClickHouse — then the worker, then Redis, then ClickHouse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from magpie.children import Child, ChildSpec, wait_until
from magpie.embedded_redis import EmbeddedRedis
from magpie.secrets_file import load_or_create_secret_key
from magpie.settings import Settings

log = logging.getLogger("magpie.supervisor")
STORE_START_TIMEOUT_S = 120.0
BIND_RETRY_S = 15.0  # a killed predecessor's children may hold the port for a moment


@dataclass
class Plan:
    """What this supervisor runs and how its children reach the shared parts."""

    clickhouse_url: str
    clickhouse_display: str  # the URL without a password, for the banner
    redis_url: str
    secret_key: str


def _python_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "magpie.cli", *args]


def _store_url(settings: Settings) -> tuple[str, str]:
    host = "127.0.0.1" if settings.clickhouse_host in ("0.0.0.0", "::", "") else settings.clickhouse_host
    base = f"{host}:{settings.clickhouse_port}"
    auth = f"default:{quote(settings.clickhouse_password, safe='')}@" if settings.clickhouse_password else ""
    return f"http://{auth}{base}/magpie", f"http://{base}"


def _store_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def spool_backlog(directory: Path) -> bool:
    """True when the spool directory holds records its writer has not moved into ClickHouse."""
    segments = sorted(directory.glob("seg-*.log"))
    if not segments:
        return False
    try:
        checkpoint = json.loads((directory / "checkpoint.json").read_bytes())
    except (FileNotFoundError, ValueError):
        return any(s.stat().st_size > 0 for s in segments)
    last = segments[-1]
    end = (int(last.name[4:16]), last.stat().st_size)
    return checkpoint.get("intent") is not None or tuple(checkpoint["position"]) < end


def listening_socket(host: str, port: int) -> socket.socket:
    """The one socket every web process accepts on (inherited by fd), bound with a short retry."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + BIND_RETRY_S
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = dict(os.environ)
        self.store: Child | None = None
        self.redis: Child | None = None
        self.webs: list[Child] = []
        self.worker: Child | None = None
        self.stopping = False
        self.sock: socket.socket | None = None
        self.log_dir = settings.data_dir / "logs"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            plan = self._start_shared()
            if self.stopping:
                return 0
            self._bootstrap(plan)
            self._start_processes(plan)
            self._monitor()
        finally:
            self._stop_all()
        return 0

    def _child_env(self, plan: Plan, **extra: str) -> dict[str, str]:
        return {
            **self.env,
            "MAGPIE_CLICKHOUSE_URL": plan.clickhouse_url,
            "MAGPIE_REDIS_URL": plan.redis_url,
            "MAGPIE_SECRET_KEY": plan.secret_key,
            "MAGPIE_SUPERVISED": "1",
            **extra,
        }

    def _start_shared(self) -> Plan:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        secret_key = settings.secret_key or load_or_create_secret_key(settings.data_dir)
        clickhouse_url, display = settings.clickhouse_url, ""
        if settings.embedded:
            clickhouse_url, display = _store_url(settings)
            self.store = Child(ChildSpec("clickhouse", _python_argv("clickhouse"), self.env))
            self._start_store(self.store, display)
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir)
            spec = ChildSpec("redis", embedded.argv(), self.env, stop_timeout_s=30, prepare=embedded.prepare)
            self.redis = Child(spec)
            self.redis.start()
            wait_until(embedded.socket.exists, self.redis, 30, "listening")
            self._write_pids()
            redis_url = embedded.url
        return Plan(clickhouse_url, display, redis_url, secret_key)

    def _start_store(self, store: Child, url: str) -> None:
        """Start the embedded ClickHouse once its port is free (a killed predecessor's store may
        still be exiting and holding the data path), retrying while it fails to come up."""
        port_free_by = time.monotonic() + BIND_RETRY_S
        while _store_answers(url):
            if time.monotonic() > port_free_by:
                raise RuntimeError(f"{url} already answers: MAGPIE_CLICKHOUSE_PORT is in use")
            time.sleep(0.1)
        deadline = time.monotonic() + STORE_START_TIMEOUT_S
        while True:
            store.start()
            self._write_pids()
            try:
                wait_until(lambda: _store_answers(url), store, STORE_START_TIMEOUT_S, "answering")
                return
            except RuntimeError:
                if self.stopping or time.monotonic() > deadline:
                    raise
                log.warning("the embedded ClickHouse did not come up; retrying")
                store.wait(5)
                time.sleep(0.5)

    def _write_pids(self) -> None:
        """<data dir>/run/children.json: the live children's pids, for operators and tests."""
        run = self.settings.data_dir / "run"
        run.mkdir(exist_ok=True)
        pids = {c.spec.name: c.pid for c in self._children() if c.pid is not None}
        pids["supervisor"] = os.getpid()
        tmp = run / "children.json.tmp"
        tmp.write_text(json.dumps(pids))
        os.replace(tmp, run / "children.json")

    def _bootstrap(self, plan: Plan) -> None:
        """Migrations, the admin token and the default source, once, before any web process starts."""
        from magpie.bootstrap import bootstrap  # the activation stack is needed here only

        settings = replace(self.settings, clickhouse_url=plan.clickhouse_url, secret_key=plan.secret_key)
        asyncio.run(bootstrap(settings, plan.clickhouse_display))

    def _start_processes(self, plan: Plan) -> None:
        settings = self.settings
        self.sock = listening_socket(settings.host, settings.port)
        fd = self.sock.fileno()
        self._adopt_legacy_spool()
        for index in range(self._web_count()):
            spool = settings.data_dir / "spool" / f"web-{index}"
            env = self._child_env(plan, MAGPIE_SPOOL_DIR=str(spool), MAGPIE_PROCESS_NAME=f"web-{index}")
            spec = ChildSpec(f"web-{index}", _python_argv("web", "--fd", str(fd)), env, (fd,), 90)
            self.webs.append(Child(spec))
        worker_env = self._child_env(plan, MAGPIE_PROCESS_NAME="worker")
        self.worker = Child(ChildSpec("worker", _python_argv("worker", "--headless"), worker_env))
        for child in [*self.webs, self.worker]:
            child.start()
        self._write_pids()

    def _web_count(self) -> int:
        """MAGPIE_WEB_PROCESSES, or more while a higher-numbered spool still holds acknowledged events
        (the setting was lowered): each spool is drained by its own web process, so none is stranded."""
        wanted = self.settings.web_processes
        backlog = [
            i for i in range(wanted, 1024) if spool_backlog(self.settings.data_dir / "spool" / f"web-{i}")
        ]
        if backlog:
            log.warning("spools web-%s still hold events: running %d web processes", backlog, backlog[-1] + 1)
            return backlog[-1] + 1
        return wanted

    def _adopt_legacy_spool(self) -> None:
        """A spool written by the one-process server (data/spool/seg-*) is drained by web process 0."""
        legacy = self.settings.data_dir / "spool"
        first = legacy / "web-0"
        movable = [*legacy.glob("seg-*.log"), *legacy.glob("checkpoint.json"), *legacy.glob("spool-id")]
        if not movable:
            return
        first.mkdir(parents=True, exist_ok=True)
        for path in movable:
            os.replace(path, first / path.name)
        log.info("moved the previous spool into %s", first)

    def _children(self) -> list[Child]:
        return [c for c in (self.store, self.redis, *self.webs, self.worker) if c is not None]

    def _monitor(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for child in self._children():
                if child.poll_restart(now):
                    self._write_pids()
            time.sleep(0.2)

    def _stop_all(self) -> None:
        """Web processes (flush their spools) → worker → Redis → ClickHouse."""
        self.stopping = True
        for web in self.webs:
            web.signal(signal.SIGTERM)
        for web in self.webs:
            web.wait(web.spec.stop_timeout_s)
        if self.sock is not None:
            self.sock.close()
        for child in (self.worker, self.redis, self.store):
            if child is not None:
                child.stop()
        log.info("stopped")


def serve(settings: Settings) -> int:
    return Supervisor(settings).run()
