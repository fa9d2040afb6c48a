"""The pipeline's steps, one pure test each (no server, no storage), and how the list runs them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from collector.enrich.geo import GeoLookup
from collector.normalize import Defaults, Event, normalize
from collector.pipeline import (
    Draft,
    RequestFacts,
    Step,
    apply_ip_policy,
    build_row,
    build_steps,
    put_campaign,
    put_client_ip,
    put_geo,
    put_referrer,
    put_user_agent,
)
from collector.sources import Source
from tests.server import GEOIP_DIR

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def draft(item: dict[str, Any], raw: bytes | None = None, policy: str = "keep", **facts: Any) -> Draft:
    body = {"type": "track", "event": "E", "userId": "u", **item}
    raw = orjson.dumps(body) if raw is None else raw
    event = normalize(body, raw, Defaults(), datetime.now(UTC), None, False)
    assert isinstance(event, Event)
    request = RequestFacts(facts.get("ip", "9.9.9.9"), facts.get("ua", ""), Source("s", "k", ip_policy=policy),
                           facts.get("browser", False))  # fmt: skip
    row = {"ip": event.message["context"]["ip"]} if "ip" in event.message["context"] else {}
    if "userAgent" in event.message["context"]:
        row["user_agent"] = event.message["context"]["userAgent"]
    return Draft(event, request, row, raw)


def test_client_ip_fills_a_client_side_event_only() -> None:
    assert put_client_ip(draft({})).row["ip"] == "9.9.9.9"
    assert put_client_ip(draft({"context": {"ip": "1.2.3.4"}})).row["ip"] == "1.2.3.4"
    server_side = put_client_ip(draft({"context": {"library": {"name": "analytics-python"}}}))
    assert "ip" not in server_side.row and "ip" not in server_side.context


def test_user_agent_header_counts_only_for_browser_transports() -> None:
    assert put_user_agent(draft({}, ua="curl/8.5.0")).row.get("is_bot") is None  # a server's HTTP client
    assert put_user_agent(draft({}, ua="python-requests/2.32")).row == {}
    assert put_user_agent(draft({}, ua=GOOGLEBOT, browser=True)).row["is_bot"] == 1
    browser = put_user_agent(draft({}, ua=CHROME, browser=True)).row
    assert browser["is_bot"] == 0 and browser["ua_browser"] == "Chrome"
    claimed = put_user_agent(draft({"context": {"userAgent": GOOGLEBOT}}, ua="curl/8.5.0")).row
    assert claimed["is_bot"] == 1  # context.userAgent describes the end user whatever the transport


def test_geo_looks_up_the_row_ip() -> None:
    geo = GeoLookup(str(GEOIP_DIR / "GeoIP2-City-Test.mmdb"), str(GEOIP_DIR / "GeoLite2-ASN-Test.mmdb"))
    assert put_geo(geo, draft({"context": {"ip": "81.2.69.142"}})).row["geo_city"] == "London"
    assert "geo_city" not in put_geo(geo, draft({})).row  # no ip column yet: nothing to look up
    assert put_geo(GeoLookup(), draft({"context": {"ip": "81.2.69.142"}})).row == {"ip": "81.2.69.142"}


def test_campaign_and_referrer_read_the_context() -> None:
    url = "https://s.example/?utm_source=news&utm_medium=email&gclid=G"
    step = put_campaign(draft({"context": {"page": {"url": url, "referrer": "https://www.bing.com/"}}}))
    assert step.row["utm_source"] == "news" and step.row["click_id"] == "G"
    assert put_referrer(step).row["referrer_domain"] == "bing.com"


def test_ip_policy_truncates_a_json_escaped_ip_in_the_raw_copy() -> None:
    raw = b'{"type":"track","event":"E","userId":"u","context":{"ip":"81.2.69.\\u0031\\u0034\\u0032"}}'
    step = apply_ip_policy(draft({"context": {"ip": "81.2.69.142"}}, raw, "truncate"))
    assert step.row["ip"] == step.context["ip"] == "81.2.69.0"
    assert orjson.loads(step.raw)["context"] == {"ip": "81.2.69.0"} and b"142" not in step.raw


def test_ip_policy_drop_removes_only_the_ip_from_the_raw_copy() -> None:
    step = apply_ip_policy(
        draft({"context": {"ip": "e", "locale": "de-DE"}, "properties": {"p": "eee"}}, None, "drop")
    )
    assert "ip" not in step.row and "ip" not in step.context
    raw = orjson.loads(step.raw)
    assert raw["context"] == {"locale": "de-DE"} and raw["properties"] == {"p": "eee"} and raw["event"] == "E"


def test_ip_policy_keeps_the_request_bytes_when_nothing_changes() -> None:
    raw = b'{"type":"track",  "event":"E","userId":"u","context":{"ip":"1.2.3.4"}}'
    assert apply_ip_policy(draft({"context": {"ip": "1.2.3.4"}}, raw, "keep")).raw is raw
    # an IP taken from the request is not in the raw copy: truncating it leaves the bytes alone
    from_request = put_client_ip(draft({}, b'{"event":"E"}', "truncate", ip="81.2.69.142"))
    assert apply_ip_policy(from_request).raw == b'{"event":"E"}' and from_request.row["ip"] == "81.2.69.0"


def test_a_drop_ends_the_pipeline_and_a_failing_step_is_skipped() -> None:
    event = draft({}).event
    facts = RequestFacts("", "", Source("s", "k"))
    seen: list[str] = []

    def boom(d: Draft) -> Draft:
        raise RuntimeError("enrichment broke")

    def record(d: Draft) -> Draft:
        seen.append("after")
        return d

    steps = [Step("boom", boom), Step("suppress", lambda d: d.drop("suppressed")), Step("after", record)]
    dropped = build_row(event, facts, steps, "i1")
    assert dropped.dropped == "suppressed" and dropped.failures == ["boom"] and seen == []
    assert "raw" not in dropped.row  # a dropped event is never finished into a row
    essential = build_row(
        event, facts, [Step("ip_policy", boom, essential=True), Step("after", record)], "i2"
    )
    assert essential.dropped == "ip_policy_failed" and seen == []


def test_the_steps_are_a_plain_named_list_ending_with_the_ip_policy() -> None:
    steps = build_steps(GeoLookup())
    names = ["suppression", "consent", "client_ip", "user_agent", "geo", "campaign", "referrer", "ip_policy"]
    assert [s.name for s in steps] == names
    assert [s.name for s in steps if s.essential] == ["suppression", "consent", "ip_policy"]
    row = build_row(draft({"context": {"ip": "81.2.69.142"}}, None, "truncate").event,
                    RequestFacts("", "", Source("s", "k", ip_policy="truncate")), steps, "i3").row  # fmt: skip
    assert row["ip"] == "81.2.69.0" and orjson.loads(row["raw"])["context"]["ip"] == "81.2.69.0"
    assert orjson.loads(row["context"])["ip"] == "81.2.69.0"
