"""Consent controls: buffering until consent, category preferences on every
event, remembered choices, opt-out, and GPC/DNT when configured."""

from __future__ import annotations

import asyncio
from datetime import datetime

from playwright.async_api import BrowserContext

from tests.tag._helpers import open_site_page, stored_queue, wait_for
from tests.tag._recorder import Recorder
from tests.tag._site import Site

QUICK = {"flushInterval": 100}
GPC_ON = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
DNT_ON = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
PREFERENCES = {"analytics": True, "advertising": False}


async def test_calls_wait_for_consent_then_carry_the_categories(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "requireConsent": True})
    await page.evaluate("analytics.track('Before Consent')")
    await asyncio.sleep(1)
    assert recorder.received == []
    assert await context.cookies() == []  # no identifiers stored before consent
    assert await stored_queue(page) == []

    granted_at = datetime.now().astimezone()
    await page.evaluate("prefs => analytics.consent({categoryPreferences: prefs})", PREFERENCES)
    await wait_for(lambda: len(recorder.events()) >= 2, what="the buffered calls")
    page_view, track = recorder.events()
    assert (page_view["type"], track["event"]) == ("page", "Before Consent")
    for event in (page_view, track):
        assert event["context"]["consent"] == {"categoryPreferences": PREFERENCES}
    # The buffered call keeps the time it was made, not the time of consent.
    assert datetime.fromisoformat(track["timestamp"]) < granted_at
    assert "ajs_anonymous_id" in {c["name"] for c in await context.cookies()}


async def test_consent_is_remembered_on_the_next_visit(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "requireConsent": True})
    await page.evaluate("analytics.consent({categoryPreferences: {analytics: true}})")
    await wait_for(lambda: recorder.events(), what="first page view")

    await page.reload()
    await wait_for(lambda: len(recorder.events()) >= 2, what="second page view without a new consent call")
    assert recorder.events()[1]["context"]["consent"] == {"categoryPreferences": {"analytics": True}}


async def test_opt_out_drops_the_queue_and_forgets_ids(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    recorder.status = 503
    recorder.retry_after_s = 60
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await page.evaluate("analytics.track('Queued')")
    await wait_for(lambda: recorder.refused, what="a refused attempt")

    await page.evaluate("analytics.optOut()")
    assert await stored_queue(page) == []
    assert await page.evaluate("analytics.user().anonymousId()") is None
    assert await page.evaluate("localStorage.getItem('magpie_opt')") == '"out"'


async def test_opt_in_after_opt_out_tracks_again(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "pageview": False})
    await page.evaluate(
        "analytics.optOut(); analytics.track('Dropped'); analytics.optIn(); analytics.track('Kept')"
    )
    await wait_for(lambda: recorder.events(), what="the event after opt-in")
    await asyncio.sleep(0.5)
    assert [e["event"] for e in recorder.events()] == ["Kept"]


async def test_gpc_is_honoured_when_configured(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    await context.add_init_script(GPC_ON)
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "respectGPC": True})
    await page.evaluate("analytics.track('Ignored')")
    await asyncio.sleep(1)
    assert recorder.received == []
    assert await context.cookies() == []


async def test_gpc_is_ignored_unless_configured(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    await context.add_init_script(GPC_ON)
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await wait_for(lambda: recorder.events(), what="the page view")


async def test_dnt_is_honoured_when_configured(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    await context.add_init_script(DNT_ON)
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "respectDNT": True})
    await page.evaluate("analytics.track('Ignored')")
    await asyncio.sleep(1)
    assert recorder.received == []


async def test_explicit_opt_in_overrides_gpc(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    await context.add_init_script(GPC_ON)
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "respectGPC": True, "pageview": False})
    await page.evaluate("analytics.optIn(); analytics.track('Chosen')")
    await wait_for(lambda: recorder.events(), what="the event after an explicit opt-in")
