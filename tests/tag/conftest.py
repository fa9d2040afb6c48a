"""Fixtures for the browser tests: real Chromium (Debian's package) driven by
Playwright, a customer site on its own origin, and a recording fake collector
for the delivery tests that need a collector failing on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.tag._recorder import Recorder
from tests.tag._recorder import build_app as recorder_app
from tests.tag._site import Site
from tests.tag._site import build_app as site_app

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The customer site lives at www.magpie.test: a real domain for cookies,
    # another origin than the collector, still only this machine.
    "--host-resolver-rules=MAP *.magpie.test 127.0.0.1",
    "--disable-features=HttpsUpgrades",
]


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Run an aiohttp app on a free loopback port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    return runner, port


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tag/scripts/install-browser.sh")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        await chromium.close()


def visitor_user_agent(browser: Browser) -> str:
    """What this Chromium sends when run with a window: headless mode says
    "HeadlessChrome", which no visitor's browser does (and bot filters catch)."""
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{browser.version} Safari/537.36"
    )


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh profile per test: no cookies, no localStorage."""
    ctx = await browser.new_context(user_agent=visitor_user_agent(browser))
    yield ctx
    await ctx.close()


@pytest.fixture(scope="session")
async def site() -> AsyncIterator[Site]:
    state = Site()
    runner, state.port = await serve(site_app(state))
    yield state
    await runner.cleanup()


@pytest.fixture(scope="session")
async def recorder_session() -> AsyncIterator[Recorder]:
    state = Recorder()
    runner, port = await serve(recorder_app(state))
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def recorder(recorder_session: Recorder) -> Recorder:
    recorder_session.reset()
    return recorder_session
