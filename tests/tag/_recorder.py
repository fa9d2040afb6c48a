"""A throwaway collector for delivery-semantics tests: it records what the tag
sends and can refuse (503, 429, 400...) on demand, which the real server will
not do at will. Everything about what is *stored* is tested against the real
server instead."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
TAG_JS = ROOT / "collector" / "static" / "tag.js"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
}


@dataclass
class Received:
    """One POST as it arrived."""

    path: str
    query: dict[str, str]
    content_type: str
    body: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def message_ids(self) -> list[str]:
        return [e["messageId"] for e in self.body.get("batch", [self.body])]


@dataclass
class Recorder:
    """State of the fake collector; tests flip `status` to make it fail."""

    status: int = 200
    retry_after_s: int | None = None
    received: list[Received] = field(default_factory=list)
    preflights: int = 0
    url: str = ""

    @property
    def refused(self) -> list[Received]:
        return [r for r in self.received if r.status != 200]

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == 200]

    def events(self) -> list[dict[str, Any]]:
        """Events from accepted requests, in arrival order."""
        out: list[dict[str, Any]] = []
        for request in self.accepted:
            out.extend(request.body.get("batch", [request.body]))
        return out

    def reset(self) -> None:
        self.status, self.retry_after_s, self.preflights = 200, None, 0
        self.received.clear()


def _answer(recorder: Recorder) -> web.Response:
    headers = dict(CORS)
    if recorder.retry_after_s is not None and recorder.status != 200:
        headers["Retry-After"] = str(recorder.retry_after_s)
    return web.json_response({"success": recorder.status == 200}, status=recorder.status, headers=headers)


def build_app(recorder: Recorder) -> web.Application:
    async def ingest(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        recorder.received.append(
            Received(request.path, dict(request.query), request.content_type, body, recorder.status)
        )
        return _answer(recorder)

    async def preflight(request: web.Request) -> web.Response:
        recorder.preflights += 1
        return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Headers": "*"})

    async def tag(request: web.Request) -> web.Response:
        return web.Response(body=TAG_JS.read_bytes(), content_type="application/javascript")

    app = web.Application()
    app.router.add_get("/tag.js", tag)
    app.router.add_post("/v1/{kind}", ingest)
    app.router.add_post("/beacon/v1/batch", ingest)
    app.router.add_route("OPTIONS", "/{tail:.*}", preflight)
    return app
