"""The `magpie` command: serve (all-in-one), collector / api / worker (server mode), migrate."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from clickhouse.migrations import migrate
from magpie.http_protocol import uvicorn_config
from magpie.server import PARTS, App, clickhouse_target
from magpie.settings import ConfigError, Settings, load_settings

COMMANDS = ("serve", "collector", "api", "worker", "migrate", "clickhouse")


def _serve(settings: Settings, parts: frozenset[str]) -> None:
    app = App(settings, parts)
    config = uvicorn_config(settings, app.asgi)
    uvicorn.Server(config).run()


def _clickhouse(settings: Settings) -> int:
    from clickhouse.server import ServerConfig, serve

    host, port, password = settings.clickhouse_host, settings.clickhouse_port, settings.clickhouse_password
    data_path = settings.data_dir / "clickhouse"
    return serve(ServerConfig(data_path, host, port, password, settings.log_level))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="magpie", description="Magpie customer data platform")
    parser.add_argument("command", choices=COMMANDS, nargs="?", default="serve")
    args = parser.parse_args(argv)
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
    if args.command in ("collector", "api", "worker") and settings.embedded:
        print(
            f"magpie {args.command}: needs MAGPIE_CLICKHOUSE_URL "
            "(the embedded ClickHouse allows one process; use `magpie serve`)",
            file=sys.stderr,
        )
        return 2
    if args.command == "clickhouse":
        return _clickhouse(settings)
    if args.command == "migrate":
        applied = migrate(clickhouse_target(settings))
        print(f"applied migrations: {applied or 'none pending'}")
        return 0
    _serve(settings, PARTS if args.command == "serve" else frozenset({args.command}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
