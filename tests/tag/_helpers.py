"""Small helpers shared by the browser tests."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from playwright.async_api import Page

T = TypeVar("T")
POLL_S = 0.1


async def resolve(value: T | Awaitable[T]) -> T:
    """The server fixture's helpers may be sync or async: accept both."""
    if inspect.isawaitable(value):
        return await value
    return value


async def wait_for(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await resolve(check())
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def stored_queue(page: Page) -> list[dict[str, Any]]:
    """The events in the tag's localStorage queue (items are [queuedAtMs, event])."""
    result: list[dict[str, Any]] = await page.evaluate(
        "JSON.parse(localStorage.getItem('magpie_queue') || '[]').map(item => item[1])"
    )
    return result


async def tag_ready(page: Page) -> None:
    """Wait until the tag replaced the snippet's stub."""
    await page.wait_for_function("window.analytics && window.analytics.initialized === true")


async def open_site_page(
    page: Page,
    site: Any,
    host: str,
    options: dict[str, Any] | None = None,
    path: str = "/",
    title: str = "Home",
    body: str = "",
    write_key: str = "wk_test",
    snippet_html: str | None = None,
) -> None:
    """Serve a page embedding the snippet on the site and open it. The snippet is
    `snippet_html` when given (e.g. the server's own), else the template pointed at `host`."""
    from tests.tag._site import page_html, snippet, with_options

    head = (
        with_options(snippet_html, write_key, options) if snippet_html else snippet(write_key, host, options)
    )
    route, _, query = path.partition("?")
    url = site.add(route, page_html(title, head=head, body=body))
    await page.goto(url + ("?" + query if query else ""))
    await tag_ready(page)
