"""How the tag delivers: batching, text/plain without preflight, retries with
backoff and Retry-After, the localStorage queue across failures, reloads and
offline spells, and the last-chance flush when the page hides. Run against a
recording fake collector because these need a collector that fails on demand."""

from __future__ import annotations

import asyncio

from playwright.async_api import BrowserContext

from tests.tag._helpers import open_site_page, stored_queue, wait_for
from tests.tag._recorder import Recorder
from tests.tag._site import Site, page_html

QUICK = {"flushInterval": 100}
SLOW = {"flushInterval": 60_000, "flushAt": 100}


async def test_batch_is_text_plain_and_needs_no_preflight(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await page.evaluate("analytics.track('Signed Up', {plan: 'pro'}); analytics.track('Invited')")

    await wait_for(lambda: len(recorder.events()) >= 3, what="page view and two tracks")
    request = recorder.accepted[0]
    assert request.path == "/v1/batch"
    assert request.content_type == "text/plain"
    assert request.body["writeKey"] == "wk_test"
    assert request.body["sentAt"].endswith("Z")
    assert [e["type"] for e in recorder.events()] == ["page", "track", "track"]
    assert recorder.preflights == 0


async def test_flush_at_sends_before_the_timer(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {"flushInterval": 60_000, "flushAt": 4})
    await page.evaluate("for (let i = 0; i < 3; i++) analytics.track('E' + i)")

    await wait_for(lambda: recorder.accepted, timeout_s=5, what="a batch of flushAt events")
    assert len(recorder.accepted[0].message_ids) == 4


async def test_503_keeps_events_queued_and_delivers_them_exactly_once(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    recorder.status = 503
    recorder.retry_after_s = 1
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await page.evaluate("analytics.track('A'); analytics.track('B')")

    await wait_for(lambda: len(recorder.refused) >= 3, timeout_s=15, what="three refused attempts")
    queued = {e["messageId"] for e in await stored_queue(page)}
    assert len(queued) == 3  # page + A + B wait in localStorage
    last, previous = recorder.refused[-1], recorder.refused[-2]
    assert set(last.message_ids) == queued
    assert last.message_ids == previous.message_ids  # the same ids on every retry

    recorder.status = 200
    await wait_for(lambda: len(recorder.events()) >= 3, timeout_s=15, what="delivery after recovery")
    await asyncio.sleep(1.5)  # nothing more may arrive
    delivered = [e["messageId"] for e in recorder.events()]
    assert sorted(delivered) == sorted(queued)
    assert await stored_queue(page) == []


async def test_retry_after_is_honoured(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    recorder.status = 429
    recorder.retry_after_s = 3
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)

    await wait_for(lambda: len(recorder.refused) >= 2, timeout_s=10, what="a retry")
    gap_s = recorder.refused[1].at - recorder.refused[0].at
    assert gap_s >= 2.9


async def test_client_errors_are_dropped_not_retried(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    recorder.status = 400
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)

    await wait_for(lambda: recorder.refused, what="the refused attempt")
    await wait_for(lambda: _empty_queue(page), what="the queue to be emptied")
    await asyncio.sleep(2.5)  # longer than the first backoff
    assert len(recorder.received) == 1


async def _empty_queue(page) -> bool:  # type: ignore[no-untyped-def]
    return await stored_queue(page) == []


async def test_queue_survives_a_reload(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    recorder.status = 503
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await page.evaluate("analytics.track('Before Reload')")
    await wait_for(lambda: recorder.refused, what="a refused attempt")
    before = {e["messageId"] for e in await stored_queue(page)}

    recorder.status = 200
    await page.reload()
    await wait_for(
        lambda: before <= {e["messageId"] for e in recorder.events()}, timeout_s=10, what="old events"
    )
    await asyncio.sleep(1.5)
    delivered = [e["messageId"] for e in recorder.events()]
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    assert "Before Reload" in [e.get("event") for e in recorder.events()]


async def test_offline_spell(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, QUICK)
    await wait_for(lambda: recorder.events(), what="the page view")

    await context.set_offline(True)
    await page.evaluate("analytics.track('Offline 1'); analytics.track('Offline 2')")
    await asyncio.sleep(1.5)
    assert [e["event"] for e in await stored_queue(page)] == ["Offline 1", "Offline 2"]

    await context.set_offline(False)
    await wait_for(lambda: len(recorder.events()) >= 3, timeout_s=10, what="delivery once online")
    await asyncio.sleep(1)
    names = [e.get("event") for e in recorder.events()]
    assert names.count("Offline 1") == 1 and names.count("Offline 2") == 1


async def test_queue_is_bounded(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    recorder.status = 503
    recorder.retry_after_s = 60
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, SLOW)
    await page.evaluate("for (let i = 0; i < 150; i++) analytics.track('E' + i)")

    queued = await stored_queue(page)
    assert len(queued) == 100
    assert queued[-1]["event"] == "E149"  # the oldest went first


async def test_hidden_page_flushes_at_once(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, SLOW)
    await page.evaluate("analytics.track('Tab Hidden')")
    await page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    await wait_for(lambda: recorder.events(), timeout_s=3, what="the flush on hide")
    assert [e.get("event") for e in recorder.events()][-1] == "Tab Hidden"


async def test_leaving_the_page_sends_a_beacon(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, SLOW)
    await page.evaluate("analytics.track('Leaving')")
    await page.goto("about:blank")

    await wait_for(lambda: recorder.events(), timeout_s=5, what="the beacon")
    assert recorder.accepted[0].path in {"/v1/batch", "/beacon/v1/batch"}
    assert "Leaving" in [e.get("event") for e in recorder.events()]


async def test_pagehide_uses_send_beacon(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, SLOW)
    await page.evaluate("analytics.track('Beaconed'); dispatchEvent(new Event('pagehide'))")

    await wait_for(lambda: recorder.events(), timeout_s=5, what="the beacon")
    beacon = recorder.accepted[0]
    assert beacon.path == "/beacon/v1/batch"
    assert beacon.query == {"writeKey": "wk_test"}
    assert beacon.content_type == "text/plain"
    assert [e.get("event") for e in beacon.body["batch"]][-1] == "Beaconed"


async def test_events_queued_on_an_earlier_visit_are_sent_unless_expired(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    """Past the collector's 7-day dedupe window a resend could double count: such events are dropped."""
    day_ms = 86_400_000
    page = await context.new_page()
    await page.goto(site.add("/plain", page_html("No tag")))
    await page.evaluate(
        """dayMs => {
            const event = (id, name) => ({
                type: 'track', event: name, messageId: id, anonymousId: 'a',
                timestamp: '2020-01-01T00:00:00.000Z', properties: {}, context: {},
            });
            localStorage.setItem('magpie_queue', JSON.stringify([
                [Date.now() - 8 * dayMs, event('old-1', 'Expired')],
                [Date.now() - 6 * dayMs, event('recent-1', 'Still Fresh')],
            ]));
        }""",
        day_ms,
    )
    await open_site_page(page, site, recorder.url, {**QUICK, "pageview": False})

    await wait_for(lambda: recorder.events(), what="the queued event")
    await asyncio.sleep(0.5)
    assert [e["messageId"] for e in recorder.events()] == ["recent-1"]
    assert await stored_queue(page) == []
