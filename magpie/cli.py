"""The `magpie` command: serve (the supervisor), collector / api / worker (server mode), migrate,
clickhouse (the embedded store), and `web` (a supervised web process: collector + APIs)."""

from __future__ import annotations

import argparse
import logging
import sys

from magpie.settings import ConfigError, Settings, load_settings

COMMANDS = ("serve", "collector", "api", "worker", "migrate", "web", "clickhouse")
SPLIT = ("collector", "api", "worker", "web")
WEB = frozenset({"collector", "api"})
# The app stack is imported only by the commands that run it: `magpie clickhouse` must start even if
# an activation module is broken.


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
        if settings.embedded:
            print(
                "magpie migrate: needs MAGPIE_CLICKHOUSE_URL (`magpie serve` migrates its store)",
                file=sys.stderr,
            )
            return 2
        from clickhouse.client import ClickHouseTarget
        from clickhouse.migrations import migrate

        target = ClickHouseTarget.from_url(settings.clickhouse_url, settings.clickhouse_cluster)
        applied = migrate(target)
        print(f"applied migrations: {applied or 'none pending'}")
        return 0
    from magpie.run import headless, serve_http

    parts = WEB if args.command == "web" else frozenset({args.command})
    if args.headless:
        headless(settings, parts)
    else:
        serve_http(settings, parts, args.fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
