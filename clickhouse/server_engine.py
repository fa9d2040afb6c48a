"""The embedded ClickHouse engine behind `magpie clickhouse`: one chdb engine per process, many
connection handles on it.

chdb runs queries on different handles in parallel and releases the GIL while it does, but one
handle runs one call at a time (measured, see ARCHITECTURE.md). So every request borrows a handle
of its own: an idle pooled one, its session's, or a throwaway one. A handle remembers its current
database and which URL settings it has applied with `SET`, so the next request changes only what
differs and no setting outlives the request that sent it. Everything here blocks: call it from a
worker thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chdb

from clickhouse.server_errors import error, from_engine

log = logging.getLogger(__name__)

MAX_IDLE_HANDLES = 16


@dataclass
class Handle:
    conn: Any  # chdb.state.sqlitelike.Connection (untyped)
    session: bool = False
    database: str | None = None  # current database, None when unknown
    applied: dict[str, str] = field(default_factory=dict)  # URL settings currently SET
    baseline: dict[str, str | None] = field(default_factory=dict)  # session values to restore
    dirty: bool = False  # state a later request must not inherit: close instead of pooling


@dataclass(frozen=True)
class Format:
    name: str
    content_type: str
    is_input: bool
    is_output: bool


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def marker_comment(marker: str) -> str:
    """A trailing comment that finds a running query in system.processes (marker: hex only)."""
    return f"/* magpie-query:{marker} */"


def _call(
    handle: Handle, sql: str | bytes, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None
) -> Any:
    try:
        return handle.conn.query(sql, fmt, params=dict(params or {}))
    except Exception as exc:  # chdb raises ChdbError/RuntimeError carrying ClickHouse's text
        raise from_engine(exc) from None


class Engine:
    """The chdb engine at `path`, a pool of idle handles and what the server needs to know about it."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = str(path.resolve())
        self._lock = threading.Lock()
        self._idle: list[Handle] = []
        self._root = self.open()  # holds the engine open for the life of the server
        row = _call(self._root, "SELECT version(), timezone()").bytes().decode().rstrip("\n")
        self.version, self.timezone = row.split("\t")
        self.formats = self._formats()
        names = _call(self._root, "SELECT name FROM system.settings").bytes().decode()
        self.setting_names = frozenset(names.split())

    def _formats(self) -> dict[str, Format]:
        sql = "SELECT name, content_type, is_input, is_output FROM system.formats"
        found = {}
        for line in _call(self._root, sql).bytes().decode().splitlines():
            name, content_type, is_input, is_output = line.split("\t")
            found[name] = Format(name, content_type, is_input == "1", is_output == "1")
        return found

    def open(self, session: bool = False) -> Handle:
        try:
            handle = Handle(chdb.connect(self.path), session=session)  # type: ignore[no-untyped-call]
        except Exception as exc:  # a second process on the same path, a broken data dir
            raise from_engine(exc) from None
        return handle

    def acquire(self) -> Handle:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.open()

    def take_ready(self, database: str | None, settings: Mapping[str, str]) -> Handle | None:
        """An idle pooled handle already on `database` with exactly `settings` applied (it needs no
        `USE` or `SET`), or None. Does not block: the server calls it on its event loop, so a request
        such a handle serves costs one worker-thread hop (the query), not two."""
        if any(name not in self.setting_names for name in settings):
            return None  # the usual path reports it
        target = database or "default"
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):  # the most recently used first
                handle = self._idle[i]
                if handle.database == target and not self._setting_changes(handle, settings):
                    return self._idle.pop(i)
        return None

    def pool(self, handle: Handle) -> bool:
        """Back to the idle pool; False when it must be discarded (state, a session's, pool full)."""
        if handle.dirty or handle.session:
            return False
        with self._lock:
            if len(self._idle) >= MAX_IDLE_HANDLES:
                return False
            self._idle.append(handle)
        return True

    def discard(self, handle: Handle) -> None:
        try:
            handle.conn.close()
        except Exception:
            log.exception("closing a chdb handle failed")

    def close(self) -> None:
        """Close the pooled handles, then the engine (its last handle)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for handle in idle:
            self.discard(handle)
        self.discard(self._root)

    def prepare(self, handle: Handle, database: str | None, settings: Mapping[str, str]) -> None:
        """Switch the handle to `database` and exactly `settings` (on top of its baseline)."""
        unknown = sorted(name for name in settings if name not in self.setting_names)
        if unknown:
            raise error("UNKNOWN_SETTING", f"Unknown setting '{unknown[0]}'")
        target = database or (None if handle.session else "default")
        if target and target != handle.database:
            _call(handle, f"USE {quote_identifier(target)}")
            handle.database = target
        changes = self._setting_changes(handle, settings)
        if changes:
            _call(handle, "SET " + ", ".join(changes))
            handle.applied = dict(settings)

    def _setting_changes(self, handle: Handle, settings: Mapping[str, str]) -> list[str]:
        new = [name for name, value in settings.items() if handle.applied.get(name) != value]
        if handle.session:
            self._remember_baseline(handle, [n for n in new if n not in handle.baseline])
        changes = [f"{name} = {quote_literal(settings[name])}" for name in new]
        for name in handle.applied.keys() - settings.keys():
            old = handle.baseline.get(name)
            changes.append(f"{name} = DEFAULT" if old is None else f"{name} = {quote_literal(old)}")
        return changes

    def _remember_baseline(self, handle: Handle, names: list[str]) -> None:
        """A session's own value of each setting a URL parameter is about to override."""
        if not names:
            return
        listed = ", ".join(quote_literal(n) for n in names)
        sql = f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed}) FORMAT JSONCompact"
        for name, value, changed in json.loads(_call(handle, sql).bytes())["data"]:
            handle.baseline[name] = value if int(changed) else None

    def forget_session_settings(self, handle: Handle) -> None:
        """Before a session runs its own SET: put URL overrides back, and re-read baselines later."""
        self.prepare(handle, None, {})
        handle.baseline.clear()

    def lock_readonly(self, handle: Handle, value: str) -> None:
        """`readonly` cannot be reset once set, so only a handle about to be closed takes it."""
        handle.dirty = True
        _call(handle, f"SET readonly = {quote_literal(value)}")

    def kill(self, marker: str) -> None:
        """Cancel the running query whose text ends with `marker_comment(marker)` (KILL QUERY)."""
        self._kill(f"query LIKE {quote_literal('%' + marker_comment(marker))}")

    def kill_all(self) -> None:
        """Cancel every running query (at shutdown, once the grace period is over)."""
        self._kill("query NOT LIKE 'KILL QUERY%'")

    def _kill(self, condition: str) -> None:
        handle = self.acquire()
        try:
            _call(handle, f"KILL QUERY WHERE {condition} ASYNC")
        finally:
            if not self.pool(handle):
                self.discard(handle)

    def run(self, handle: Handle, sql: bytes, fmt: str, params: Mapping[str, str]) -> Any:
        return _call(handle, sql, fmt, params)

    def stream(self, handle: Handle, sql: bytes, fmt: str, params: Mapping[str, str]) -> Any:
        try:
            return handle.conn.send_query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise from_engine(exc) from None

    def insert(self, handle: Handle, header: bytes, fmt: str) -> Any:
        try:
            return handle.conn.send_insert(header, fmt)
        except Exception as exc:
            raise from_engine(exc) from None
