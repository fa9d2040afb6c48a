"""The analytics.js-compatible API: stub replay, argument forms, options,
callbacks, and never throwing into the host page."""

from __future__ import annotations

import asyncio

from playwright.async_api import BrowserContext

from tests.tag._helpers import open_site_page, wait_for
from tests.tag._recorder import Recorder
from tests.tag._site import Site, page_html, snippet

QUICK = {"flushInterval": 100}


async def test_calls_queued_by_the_stub_are_replayed_in_order(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    early = "<script>analytics.identify('early-user'); analytics.track('Early', {n: 1})</script>"
    page = await context.new_page()
    await page.goto(
        site.add("/early", page_html("Early", head=snippet("wk_test", recorder.url, QUICK) + early))
    )

    await wait_for(lambda: len(recorder.events()) >= 3, what="page, identify, track")
    events = recorder.events()
    assert [e["type"] for e in events] == ["page", "identify", "track"]
    assert events[2]["userId"] == "early-user"


async def test_a_queued_page_call_replaces_the_automatic_one(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    early = "<script>analytics.page('Docs', 'Install', {version: 2})</script>"
    page = await context.new_page()
    await page.goto(
        site.add("/docs", page_html("Docs", head=snippet("wk_test", recorder.url, QUICK) + early))
    )

    await wait_for(lambda: recorder.events(), what="the page view")
    await asyncio.sleep(0.5)
    [event] = recorder.events()
    assert (event["category"], event["name"]) == ("Docs", "Install")
    properties = event["properties"]
    assert properties["version"] == 2 and properties["name"] == "Install"
    assert properties["path"] == "/docs" and properties["url"] == site.url("/docs")


async def test_code_holding_the_stub_keeps_working(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    keep = "<script>window.stubRef = analytics</script>"
    page = await context.new_page()
    await page.goto(site.add("/ref", page_html("Ref", head=snippet("wk_test", recorder.url, QUICK) + keep)))
    await page.wait_for_function("window.analytics.initialized")
    await page.evaluate("stubRef.track('Via Stub')")
    await wait_for(
        lambda: "Via Stub" in [e.get("event") for e in recorder.events()], what="the late stub call"
    )


async def test_options_callbacks_and_ready(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "pageview": False})
    fired = await page.evaluate(
        """() => new Promise(resolve => {
            const seen = [];
            analytics.ready(() => seen.push('ready'));
            analytics.track('Opted', {a: 1}, {
                integrations: {All: false}, timestamp: '2024-05-01T10:00:00.000Z',
                context: {ip: '203.0.113.9'}, traits: {plan: 'pro'}
            }, () => { seen.push('callback'); resolve(seen) });
        })"""
    )
    assert sorted(fired) == ["callback", "ready"]
    await wait_for(lambda: recorder.events(), what="the track")
    [event] = recorder.events()
    assert event["integrations"] == {"All": False}
    assert event["timestamp"] == "2024-05-01T10:00:00.000Z"
    assert event["context"]["ip"] == "203.0.113.9"
    assert event["context"]["traits"] == {"plan": "pro"}  # unknown options go to context
    assert event["properties"] == {"a": 1}


async def test_group_and_alias(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "pageview": False})
    anonymous_id = await page.evaluate("analytics.user().anonymousId()")
    await page.evaluate("analytics.group(77, {name: 'Acme'}); analytics.alias('new-id')")

    await wait_for(lambda: len(recorder.events()) >= 2, what="group and alias")
    group, alias = recorder.events()
    assert (group["groupId"], group["traits"]) == ("77", {"name": "Acme"})
    assert (alias["userId"], alias["previousId"]) == ("new-id", anonymous_id)


async def test_bad_calls_never_throw_and_do_not_break_later_calls(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, {**QUICK, "pageview": False})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    thrown = await page.evaluate(
        """() => {
            const cyclic = {}; cyclic.self = cyclic;
            const calls = [
                () => analytics.track(), () => analytics.track(null, 5, 'x'),
                () => analytics.page(123, {}, []), () => analytics.identify(undefined, null),
                () => analytics.alias(), () => analytics.group({}),
                () => analytics.track('Cyclic', cyclic), () => analytics.track('Big', {n: 10n}),
                () => analytics.track('Bad time', {}, {timestamp: 'not a date'}),
                () => analytics.ready('not a function'), () => analytics.consent(null),
                () => analytics.user().traits(),
            ];
            return calls.filter(call => { try { call(); return false } catch { return true } }).length;
        }"""
    )
    assert thrown == 0
    await page.evaluate("analytics.track('Still Works')")
    await wait_for(
        lambda: "Still Works" in [e.get("event") for e in recorder.events()], what="a normal event"
    )
    assert errors == []


async def test_including_the_tag_twice_is_harmless(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    twice = f'<script src="{recorder.url}/tag.js"></script>'
    page = await context.new_page()
    await page.goto(
        site.add("/twice", page_html("Twice", head=snippet("wk_test", recorder.url, QUICK), body=twice))
    )
    await wait_for(lambda: recorder.events(), what="the page view")
    await asyncio.sleep(1)
    assert len(recorder.events()) == 1
