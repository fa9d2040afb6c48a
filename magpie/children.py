"""One supervised child process: started in its own process group, killed with its parent, restarted
with backoff when it dies.

Own process group (a new session): a Ctrl-C in the terminal or a SIGTERM to the server's group reaches
only the supervisor, which then stops the children in order — before, the embedded redis-server shared
the server's group, died first, and the shutdown flush failed. PR_SET_PDEATHSIG: the kernel SIGKILLs
the child when the supervisor dies, so even a `kill -9` of the supervisor leaves no child running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

log = logging.getLogger("magpie.supervisor")

_PR_SET_PDEATHSIG = 1
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a child that ran this long starts its next backoff from the minimum


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to this process when the process that forked it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    pass_fds: tuple[int, ...] = ()
    stop_timeout_s: float = 60.0
    log_file: str = ""  # empty: inherit the supervisor's stdout/stderr
    prepare: Callable[[], None] | None = None  # runs before every start (e.g. remove a stale socket)


class Child:
    """`start()`, `poll_restart(now)` from the supervisor's loop, `stop()` in the shutdown order."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.backoff_s = BACKOFF_MIN_S
        self.restart_at: float | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.spec.prepare is not None:
            self.spec.prepare()
        output = None
        if self.spec.log_file:
            self._log = open(self.spec.log_file, "ab")  # noqa: SIM115 - held for the child's life
            output = self._log
        self.process = subprocess.Popen(
            self.spec.argv,
            env=self.spec.env,
            pass_fds=self.spec.pass_fds,
            start_new_session=True,
            preexec_fn=die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.spec.name, self.process.pid)

    def poll_restart(self, now: float) -> bool:
        """If the child died, schedule a restart with backoff; restart when due (then True)."""
        if self.process is None:
            return False
        if self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return False
            if now - self.started_at >= HEALTHY_AFTER_S:
                self.backoff_s = BACKOFF_MIN_S
            self.restart_at = now + self.backoff_s
            log.error(
                "%s (pid %d) exited with %s; restarting in %.1fs",
                self.spec.name,
                self.process.pid,
                code,
                self.backoff_s,
            )
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
            return False
        if now < self.restart_at:
            return False
        self.restarts += 1
        self.start()
        return True

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for exit; SIGKILL after the timeout. Returns the exit code (None if never started)."""
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %.0fs: killing it", self.spec.name, timeout_s)
            self.process.kill()
            code = self.process.wait()
        else:
            log.info("stopped %s (exit code %s)", self.spec.name, code)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return code

    def stop(self) -> int | None:
        self.restart_at = None
        self.signal(signal.SIGTERM)
        return self.wait(self.spec.stop_timeout_s)


def wait_until(check: Callable[[], bool], child: Child, timeout_s: float, what: str) -> None:
    """Poll `check` until it holds; fail with one line if the child exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if not child.alive():
            code = child.process.returncode if child.process is not None else None
            raise RuntimeError(f"{child.spec.name} exited with {code} before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.spec.name}: not {what} after {timeout_s:.0f}s")
        time.sleep(0.05)
