"""The `magpie` command: serve (the supervisor), collector / api / worker (server mode), migrate,
clickhouse (the embedded store), and `web` (a supervised web process: collector + APIs)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

import uvicorn

from clickhouse.migrations import migrate
from magpie.http_protocol import uvicorn_config
from magpie.server import WEB, App, clickhouse_target
from magpie.settings import ConfigError, Settings, load_settings

COMMANDS = ("serve", "collector", "api", "worker", "migrate", "web", "clickhouse")
SPLIT = ("collector", "api", "worker", "web")


def _serve(settings: Settings, parts: frozenset[str], fd: int | None = None) -> None:
    app = App(settings, parts)
    config = uvicorn_config(settings, app.asgi)
    server = DrainingServer(config, app)
    server.run(sockets=[socket.socket(fileno=fd)] if fd is not None else None)


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT readiness turns 503 first, then uvicorn stops accepting and drains."""

    def __init__(self, config: uvicorn.Config, app: App) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: object) -> None:
        self.app.runtime.draining = True
        super().handle_exit(sig, frame)  # type: ignore[arg-type]


def _headless(settings: Settings, parts: frozenset[str]) -> None:
    """A process without HTTP (the supervised worker): the app's lifespan until SIGTERM/SIGINT."""
    app = App(settings, parts)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with app.lifespan(app.starlette):
            await stop.wait()

    asyncio.run(run())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magpie", description="Magpie customer data platform")
    parser.add_argument("command", choices=COMMANDS, nargs="?", default="serve")
    parser.add_argument("--fd", type=int, help="web: accept on this inherited listening socket")
    parser.add_argument("--headless", action="store_true", help="worker: no HTTP listener")
    return parser


def _clickhouse(settings: Settings) -> int:
    from clickhouse.server import ServerConfig, serve

    host, port, password = settings.clickhouse_host, settings.clickhouse_port, settings.clickhouse_password
    data_path = settings.data_dir / "clickhouse"
    return serve(ServerConfig(data_path, host, port, password, settings.log_level))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"magpie: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level.lower() != "debug":
        # arq logs every job start and end; with crons every 2 s that drowns the useful lines.
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
    if args.command == "serve":
        from magpie.supervisor import serve

        return serve(settings)
    if args.command in SPLIT and (settings.embedded or not settings.redis_url):
        print(
            f"magpie {args.command}: needs MAGPIE_CLICKHOUSE_URL and MAGPIE_REDIS_URL "
            "(or run `magpie serve`, which starts an embedded ClickHouse and Redis)",
            file=sys.stderr,
        )
        return 2
    if args.command == "clickhouse":
        return _clickhouse(settings)
    if args.command == "migrate":
        applied = migrate(clickhouse_target(settings))
        print(f"applied migrations: {applied or 'none pending'}")
        return 0
    parts = WEB if args.command == "web" else frozenset({args.command})
    if args.headless:
        _headless(settings, parts)
    else:
        _serve(settings, parts, args.fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
