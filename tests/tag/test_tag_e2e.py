"""The tag end to end: a customer page on its own origin embeds the snippet,
real Chromium runs it, and the real Magpie server stores what arrives."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import BrowserContext, Page

from tests.tag._helpers import open_site_page, resolve, stored_queue, wait_for
from tests.tag._site import COOKIE_DOMAIN, SEGMENT_DIST, Site, page_html
from tests.tag.conftest import visitor_user_agent

QUICK = {"flushInterval": 100}
LOCALE = "de-DE"
TIMEZONE = "Europe/Berlin"
SCREEN = {"width": 1366, "height": 768}


@pytest.fixture
async def source(server: Any) -> dict[str, Any]:
    """A new source, with the snippet the server hands out for it."""
    created: dict[str, Any] = await resolve(server.create_source("tag e2e"))
    response = server.admin("GET", f"/sources/{created['id']}/snippet")
    assert response.status_code == 200, response.text
    created["snippet"] = response.text
    return created


@pytest.fixture
async def german_context(browser: Any) -> Any:
    """A visitor with a distinctive locale, time zone and screen, so asserting them means something."""
    ctx = await browser.new_context(
        locale=LOCALE, timezone_id=TIMEZONE, screen=SCREEN, user_agent=visitor_user_agent(browser)
    )
    yield ctx
    await ctx.close()


async def all_stored(server: Any, source: dict[str, Any]) -> list[dict[str, Any]]:
    """The source's stored events in the order the browser made them. Not the
    debugger's order, nor `timestamp`: both depend on when each batch arrived,
    and events a few ms apart in different batches can swap."""
    events: list[dict[str, Any]] = await resolve(server.events(source["id"]))
    return sorted(events, key=lambda e: e.get("originalTimestamp") or e["timestamp"])


async def stored(
    server: Any, source: dict[str, Any], count: int, what: str = "events"
) -> list[dict[str, Any]]:
    """Wait until the server holds at least `count` events for the source."""

    async def enough() -> list[dict[str, Any]] | None:
        events = await all_stored(server, source)
        return events if len(events) >= count else None

    result: list[dict[str, Any]] = await wait_for(enough, timeout_s=20, what=f"{count} stored {what}")
    return result


async def open_tagged(
    page: Page,
    site: Site,
    server: Any,
    source: dict[str, Any],
    path: str = "/",
    title: str = "Home",
    options: dict[str, Any] | None = None,
    body: str = "",
) -> None:
    await open_site_page(
        page,
        site,
        server.url,
        {**QUICK, **(options or {})},
        path=path,
        title=title,
        body=body,
        write_key=source["write_key"],
        snippet_html=source["snippet"],
    )


async def test_page_view_is_stored_with_context_and_enrichment(
    german_context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await german_context.new_page()
    await open_tagged(
        page, site, server, source, path="/pricing?utm_source=newsletter&utm_campaign=spring", title="Pricing"
    )

    [event] = await stored(server, source, 1, "page view")
    context = event["context"]
    assert event["type"] == "page"
    assert context["page"]["url"] == site.url("/pricing?utm_source=newsletter&utm_campaign=spring")
    assert context["page"]["path"] == "/pricing"
    assert context["page"]["search"] == "?utm_source=newsletter&utm_campaign=spring"
    assert context["page"]["title"] == "Pricing"
    assert context["library"]["name"] == "magpie.js"
    assert context["library"]["version"]
    assert context["locale"] == LOCALE
    assert context["timezone"] == TIMEZONE
    assert context["screen"]["width"] == SCREEN["width"] and context["screen"]["height"] == SCREEN["height"]
    assert context["campaign"] == {"source": "newsletter", "name": "spring"}
    assert context["userAgent"] == await page.evaluate("navigator.userAgent")
    assert event["anonymousId"] == await page.evaluate("analytics.user().anonymousId()")
    user_agent = event["enrichment"]["userAgent"]
    assert user_agent["browser"] in {"Chrome", "Chromium"}
    assert user_agent["os"] == "Linux"


async def test_anonymous_id_is_stable_across_pages_and_reloads(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await context.new_page()
    await open_tagged(page, site, server, source, path="/a", title="A")
    first = await page.evaluate("analytics.user().anonymousId()")
    await open_tagged(page, site, server, source, path="/b", title="B")
    await page.reload()
    await page.wait_for_function("window.analytics && window.analytics.initialized")
    assert await page.evaluate("analytics.user().anonymousId()") == first

    events = await stored(server, source, 3, "page views")
    assert {e["anonymousId"] for e in events} == {first}
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["ajs_anonymous_id"]["value"] == quote(json.dumps(first))
    assert cookies["ajs_anonymous_id"]["domain"].lstrip(".") == COOKIE_DOMAIN


async def test_identify_then_track_carry_the_user_id(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await context.new_page()
    await open_tagged(page, site, server, source)
    await page.evaluate(
        "analytics.identify('user-42', {email: 'ada@example.com'}); analytics.track('Bought')"
    )

    events = await stored(server, source, 3)
    [page_view] = [e for e in events if e["type"] == "page"]
    [identify] = [e for e in events if e["type"] == "identify"]
    [track] = [e for e in events if e["type"] == "track"]
    assert "userId" not in page_view or page_view["userId"] is None
    assert identify["userId"] == "user-42"
    assert identify["traits"]["email"] == "ada@example.com"
    assert track["event"] == "Bought" and track["userId"] == "user-42"
    assert track["anonymousId"] == page_view["anonymousId"]


async def test_offline_events_arrive_exactly_once(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await context.new_page()
    await open_tagged(page, site, server, source)
    await stored(server, source, 1, "page view")

    await context.set_offline(True)
    await page.evaluate("for (let i = 0; i < 5; i++) analytics.track('Offline ' + i)")
    await wait_for(lambda: _queue_len(page, 5), what="five queued events")
    await page.wait_for_timeout(1500)  # failed attempts while offline
    await context.set_offline(False)

    await stored(server, source, 6)
    await page.wait_for_timeout(2000)  # a duplicate would show up by now
    events = await all_stored(server, source)
    ids = [e["messageId"] for e in events]
    assert len(ids) == len(set(ids)) == 6
    assert sorted(e["event"] for e in events if e["type"] == "track") == [f"Offline {i}" for i in range(5)]


async def _queue_len(page: Page, n: int) -> bool:
    return len(await stored_queue(page)) >= n


async def test_spa_navigation_creates_page_views(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await context.new_page()
    await open_tagged(page, site, server, source, path="/app", title="App")
    await page.evaluate("document.title = 'Settings'; history.pushState({}, '', '/app/settings')")
    await page.wait_for_timeout(50)
    await page.evaluate("history.replaceState({step: 2}, '')")  # same URL: no page view
    await page.evaluate("history.back()")

    await stored(server, source, 3, "page views")
    await page.wait_for_timeout(1000)  # the replaceState must not add one
    events = await all_stored(server, source)
    assert [e["context"]["page"]["path"] for e in events] == ["/app", "/app/settings", "/app"]
    assert events[1]["context"]["page"]["title"] == "Settings"
    assert events[1]["context"]["page"]["referrer"] == site.url("/app")


async def test_opt_out_sends_nothing(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    page = await context.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    await open_tagged(page, site, server, source, options={"pageview": False})
    await page.evaluate("analytics.optOut(); analytics.track('Ignored'); analytics.flush()")
    await page.reload()
    await page.wait_for_function("window.analytics && window.analytics.initialized")
    await page.evaluate("analytics.track('Ignored too'); analytics.page(); analytics.flush()")
    await page.wait_for_timeout(1500)

    assert sent == []
    assert await all_stored(server, source) == []
    assert "ajs_anonymous_id" not in {c["name"] for c in await context.cookies()}


@pytest.mark.parametrize(
    "cookie_value",
    [quote('"segment-legacy-id"'), "segment-legacy-id"],
    ids=["json-encoded (analytics.js classic)", "raw (analytics-next)"],
)
async def test_existing_segment_anonymous_id_is_kept(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any], cookie_value: str
) -> None:
    await context.add_cookies(
        [{"name": "ajs_anonymous_id", "value": cookie_value, "domain": "." + COOKIE_DOMAIN, "path": "/"}]
    )
    page = await context.new_page()
    await open_tagged(page, site, server, source)

    [event] = await stored(server, source, 1, "page view")
    assert event["anonymousId"] == "segment-legacy-id"


SEGMENT_STUB = """<script>
!function(){var a=window.analytics=window.analytics||[];
["track","page","identify","group","alias","reset","ready"].forEach(function(m){
  a[m]=function(){var c=[].slice.call(arguments);c.unshift(m);a.push(c);return a}});
a._writeKey=%(wk)s;a._cdn=%(cdn)s;
var s=document.createElement("script");s.async=true;s.src="/segment/standalone.js";
document.head.appendChild(s);
a.page();a.identify("stock-user",{plan:"pro"});a.track("Stock Event",{n:1});}();
</script>"""


async def test_stock_segment_analytics_js_sends_to_magpie(
    context: BrowserContext, site: Site, server: Any, source: dict[str, Any]
) -> None:
    """Only `_cdn` points at Magpie: the settings endpoint does the rest."""
    assert SEGMENT_DIST.is_dir(), "analytics.js is missing: run `npm ci` in tag/"
    stub = SEGMENT_STUB % {"wk": json.dumps(source["write_key"]), "cdn": json.dumps(server.url)}
    page = await context.new_page()
    await page.goto(site.add("/segment-site", page_html("Stock", head=stub)))

    events = await stored(server, source, 3, "analytics.js events")
    by_type = {e["type"]: e for e in events}
    assert by_type["track"]["event"] == "Stock Event"
    assert by_type["track"]["userId"] == "stock-user"
    assert by_type["identify"]["traits"]["plan"] == "pro"
    assert by_type["page"]["context"]["library"]["name"] == "analytics.js"
    assert by_type["page"]["context"]["page"]["path"] == "/segment-site"
