"""`magpie clickhouse`: the embedded ClickHouse (chdb) as its own process, serving ClickHouse's HTTP
interface so every other process reaches it with an ordinary HTTP client, as in server mode.

It refuses to listen beyond loopback without a password. SIGTERM stops accepting connections, lets
running queries finish, then closes the engine.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from clickhouse.server_app import ClickHouseApp
from clickhouse.server_engine import Engine
from clickhouse.server_errors import ClickHouseError

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 60


@dataclass(frozen=True)
class ServerConfig:
    data_path: Path  # the chdb data directory (<data dir>/clickhouse)
    host: str = "127.0.0.1"
    port: int = 8123
    password: str = ""
    log_level: str = "info"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def refusal(config: ServerConfig) -> str | None:
    """Why the server must not start with this configuration, on one line (None: it may)."""
    if not config.password and not is_loopback(config.host):
        return (
            f"MAGPIE_CLICKHOUSE_PASSWORD: required to listen on {config.host} (beyond loopback); "
            "set it or use MAGPIE_CLICKHOUSE_HOST=127.0.0.1"
        )
    return None


def serve(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; the exit status."""
    reason = refusal(config)
    if reason:
        print(f"magpie clickhouse: {reason}", file=sys.stderr)
        return 2
    try:
        engine = Engine(config.data_path)
    except ClickHouseError as exc:
        print(f"magpie clickhouse: cannot open {config.data_path}: {exc.text}", file=sys.stderr)
        return 1
    app = ClickHouseApp(engine, config.password)
    server = uvicorn.Server(_uvicorn_config(app, config))
    for signum in (signal.SIGTERM, signal.SIGINT):
        # uvicorn re-raises the signal after its graceful shutdown; with this handler that returns
        # here instead of killing the process before the engine is closed.
        signal.signal(signum, lambda *_: None)
    try:
        server.run()
    finally:
        app.close()
    log.info("clickhouse: stopped, engine closed")
    return 0 if server.started else 1


def _uvicorn_config(app: ClickHouseApp, config: ServerConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        interface="asgi3",
        log_level=config.log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=30,
        proxy_headers=False,
        server_header=False,
        date_header=True,
    )
