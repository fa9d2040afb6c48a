"""The engine's handle pool: a request whose database and settings an idle handle already has takes
it without preparation (on the event loop); any other request prepares one on a worker thread."""

from __future__ import annotations

from pathlib import Path

from clickhouse.server_engine import Engine, Handle


def _setting(engine: Engine, handle: Handle, name: str) -> str:
    out = engine.run(handle, f"SELECT getSetting('{name}')".encode(), "TabSeparated", {})
    return str(out.bytes().decode().strip())


def test_only_a_handle_with_exactly_the_requests_settings_is_taken_ready(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "ch")
    try:
        plain, tuned = engine.acquire(), engine.acquire()
        engine.prepare(plain, "default", {})
        engine.prepare(tuned, "default", {"max_threads": "3"})
        assert engine.pool(plain) and engine.pool(tuned)
        assert engine.take_ready("default", {"max_threads": "3"}) is tuned  # not merely the newest
        assert engine.take_ready("default", {"max_threads": "3"}) is None  # in use: none left like it
        assert engine.take_ready("default", {"max_threads": "2"}) is None  # would need a SET
        assert engine.take_ready("system", {}) is None  # would need a USE
        assert engine.take_ready("default", {"no_such_setting": "1"}) is None  # the usual path reports it
        assert engine.take_ready(None, {}) is plain
        assert _setting(engine, tuned, "max_threads") == "3"
        assert _setting(engine, plain, "max_threads") != "3"
        for handle in (plain, tuned):
            engine.discard(handle)
    finally:
        engine.close()
