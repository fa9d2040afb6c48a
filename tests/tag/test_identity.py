"""Identity storage compatible with analytics.js: cookie names, format and
attributes, localStorage copies, and the identify/reset rules."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from playwright.async_api import BrowserContext

from tests.tag._helpers import open_site_page, tag_ready
from tests.tag._recorder import Recorder
from tests.tag._site import COOKIE_DOMAIN, Site, page_html, snippet

YEAR_S = 365 * 86400
UUID_V4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


async def test_cookies_match_analytics_js(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)
    await page.evaluate("analytics.identify('u-1', {plan: 'pro'})")
    anonymous_id = await page.evaluate("analytics.user().anonymousId()")

    cookies = {c["name"]: c for c in await context.cookies()}
    anon = cookies["ajs_anonymous_id"]
    assert anon["value"] == quote(json.dumps(anonymous_id))  # JSON string, URL-encoded
    assert anon["domain"] == "." + COOKIE_DOMAIN  # the registrable domain, not www.
    assert anon["path"] == "/" and anon["sameSite"] == "Lax"
    assert abs(anon["expires"] - (time.time() + YEAR_S)) < 120
    assert cookies["ajs_user_id"]["value"] == quote('"u-1"')
    assert "__magpie_tld" not in cookies  # the domain probe cleans up
    local = await page.evaluate(
        "['ajs_anonymous_id', 'ajs_user_id', 'ajs_user_traits'].map(k => localStorage.getItem(k))"
    )
    assert local == [json.dumps(anonymous_id), '"u-1"', '{"plan":"pro"}']


async def test_ip_address_host_gets_a_host_only_cookie(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    site.add("/ip", page_html("IP", head=snippet("wk_test", recorder.url)))
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{site.port}/ip")
    await tag_ready(page)

    [cookie] = [c for c in await context.cookies() if c["name"] == "ajs_anonymous_id"]
    assert cookie["domain"] == "127.0.0.1"


async def test_message_ids_are_v4_uuids_even_without_secure_context(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)  # http on a real name: no crypto.randomUUID
    assert await page.evaluate("typeof crypto.randomUUID") == "undefined"
    await page.evaluate("analytics.track('A'); analytics.track('B')")

    ids = await page.evaluate(
        "JSON.parse(localStorage.getItem('magpie_queue')).map(item => item[1].messageId)"
    )
    ids.append(await page.evaluate("analytics.user().anonymousId()"))
    assert len(set(ids)) == 4
    for value in ids:
        assert await page.evaluate(f"/{UUID_V4}/.test({json.dumps(value)})"), value


async def test_local_storage_copy_restores_a_lost_cookie(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url, path="/first")
    anonymous_id = await page.evaluate("analytics.user().anonymousId()")
    await context.clear_cookies()  # e.g. a browser capping script-set cookies

    await open_site_page(page, site, recorder.url, path="/second")
    assert await page.evaluate("analytics.user().anonymousId()") == anonymous_id
    assert "ajs_anonymous_id" in {c["name"] for c in await context.cookies()}


async def test_numeric_ids_from_storage_become_strings(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    await context.add_cookies(
        [{"name": "ajs_user_id", "value": "12345", "domain": "." + COOKIE_DOMAIN, "path": "/"}]
    )
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)
    assert await page.evaluate("analytics.user().id()") == "12345"


async def test_identify_merges_traits_for_the_same_user(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)
    await page.evaluate("analytics.identify('u-1', {a: 1}); analytics.identify({b: 2})")
    assert await page.evaluate("analytics.user().traits()") == {"a": 1, "b": 2}
    assert await page.evaluate("analytics.user().id()") == "u-1"


async def test_another_user_on_the_device_starts_afresh(
    context: BrowserContext, site: Site, recorder: Recorder
) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)
    await page.evaluate("analytics.identify('u-1', {a: 1})")
    before = await page.evaluate("analytics.user().anonymousId()")
    await page.evaluate("analytics.identify('u-2', {b: 2})")

    assert await page.evaluate("analytics.user().traits()") == {"b": 2}
    assert await page.evaluate("analytics.user().anonymousId()") != before


async def test_reset_forgets_the_user(context: BrowserContext, site: Site, recorder: Recorder) -> None:
    page = await context.new_page()
    await open_site_page(page, site, recorder.url)
    await page.evaluate("analytics.identify('u-1', {a: 1})")
    before = await page.evaluate("analytics.user().anonymousId()")
    await page.evaluate("analytics.reset()")

    assert await page.evaluate("[analytics.user().id(), analytics.user().traits()]") == [None, {}]
    after = await page.evaluate("analytics.user().anonymousId()")
    assert after and after != before
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    assert "ajs_user_id" not in cookies
    assert cookies["ajs_anonymous_id"] == quote(json.dumps(after))
