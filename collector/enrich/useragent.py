"""User-agent enrichment: browser, OS, device type/brand/model and the bot flag.

Parsing runs through ua-parser 1.x with its Rust regex resolver (tens of microseconds for an
unseen agent), then feeds user-agents' device model (is_mobile, is_tablet, is_bot…) without
letting it re-parse with the slow legacy path. Results are cached per agent string, and agents
are cut to MAX_UA_CHARS first so a crafted string cannot make parsing slow.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import ua_parser
from user_agents.parsers import UserAgent, parse_browser, parse_device, parse_operating_system

MAX_UA_CHARS = 512
_BOT_WORDS = ("bot", "crawler", "spider", "headlesschrome", "slurp", "curl/", "wget/", "python-requests")


def _user_agent(text: str) -> UserAgent:
    result = ua_parser.parse(text)
    browser, system, device = result.user_agent, result.os, result.device
    agent = UserAgent.__new__(UserAgent)
    agent.ua_string = text
    agent.browser = parse_browser(
        browser.family if browser else "Other", *(_parts(browser) if browser else ())
    )
    agent.os = parse_operating_system(
        system.family if system else "Other", *(_parts(system) if system else ())
    )
    agent.device = parse_device(
        device.family if device else "Other",
        device.brand if device else None,
        device.model if device else None,
    )
    return agent


def _parts(value: Any) -> tuple[Any, ...]:
    return (value.major, value.minor, value.patch, value.patch_minor)


def _device_type(agent: UserAgent) -> str:
    if agent.is_bot:
        return "bot"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "mobile"
    if agent.is_pc:
        return "desktop"
    return "other"


@lru_cache(maxsize=20_000)
def parse_user_agent(text: str) -> dict[str, Any]:
    """The enrichment columns for one user-agent string (already length-capped)."""
    agent = _user_agent(text)
    lowered = text.lower()
    is_bot = agent.is_bot or any(word in lowered for word in _BOT_WORDS)
    return {
        "ua_browser": agent.browser.family,
        "ua_browser_version": agent.browser.version_string,
        "ua_os": agent.os.family,
        "ua_os_version": agent.os.version_string,
        "ua_device_type": "bot" if is_bot else _device_type(agent),
        "ua_device_brand": agent.device.brand or "",
        "ua_device_model": agent.device.model or "",
        "is_bot": 1 if is_bot else 0,
    }


def enrich_user_agent(text: str) -> dict[str, Any]:
    return parse_user_agent(text[:MAX_UA_CHARS]) if text else {}
