"""Running one Magpie app process: on uvicorn (optionally on an inherited socket) or headless."""

from __future__ import annotations

import asyncio
import signal
import socket

import uvicorn

from magpie.http_protocol import uvicorn_config
from magpie.server import App
from magpie.settings import Settings


def serve_http(settings: Settings, parts: frozenset[str], fd: int | None = None) -> None:
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


def headless(settings: Settings, parts: frozenset[str]) -> None:
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
