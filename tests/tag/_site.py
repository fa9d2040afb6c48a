"""The customer's website: a separate origin serving pages that embed the
snippet, as a real site would. Pages are registered by tests."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "collector" / "static" / "snippet.html"
SEGMENT_DIST = ROOT / "tag" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
# The browser resolves every *.magpie.test name to 127.0.0.1 (see conftest), so the
# site has a real registrable domain for cookies and is cross-origin to the collector.
SITE_HOST = "www.magpie.test"
COOKIE_DOMAIN = "magpie.test"


def with_options(snippet_html: str, write_key: str, options: dict[str, Any] | None) -> str:
    """Add load options to a rendered snippet, as a site owner would."""
    if options is None:
        return snippet_html
    call = f'.load("{write_key}")'
    assert call in snippet_html, "the snippet no longer calls .load(WRITE_KEY)"
    return snippet_html.replace(call, f'.load("{write_key}", {json.dumps(options)})')


def snippet(write_key: str, host: str, options: dict[str, Any] | None = None) -> str:
    """The shipped snippet template with its placeholders filled, plus load options if any."""
    text = SNIPPET.read_text().replace("{{WRITE_KEY}}", write_key).replace("{{HOST}}", host)
    return with_options(text, write_key, options)


def page_html(title: str, head: str = "", body: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"{head}</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


@dataclass
class Site:
    port: int = 0
    pages: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://{SITE_HOST}:{self.port}{path}"

    def add(self, path: str, page: str) -> str:
        """Serve `page` at `path` (any query string) and return its full URL."""
        self.pages[path] = page
        return self.url(path)


def build_app(site: Site) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        page = site.pages.get(request.path)
        if page is None:
            raise web.HTTPNotFound()
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    if SEGMENT_DIST.is_dir():
        app.router.add_static("/segment/", SEGMENT_DIST)
    app.router.add_get("/{tail:.*}", serve)
    return app
