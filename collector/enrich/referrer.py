"""Referrer enrichment: the referring domain and its medium.

Medium is one of search, social, email, internal (same site), direct (no referrer) or other.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from collector.row import object_at

SEARCH = (
    "google.",
    "bing.com",
    "duckduckgo.com",
    "yahoo.",
    "baidu.com",
    "yandex.",
    "ecosia.org",
    "search.brave.com",
    "qwant.com",
    "naver.com",
    "startpage.com",
)
SOCIAL = (
    "facebook.com",
    "fb.com",
    "instagram.com",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "lnkd.in",
    "reddit.com",
    "pinterest.",
    "tiktok.com",
    "youtube.com",
    "news.ycombinator.com",
    "mastodon.",
    "threads.net",
    "bsky.app",
    "whatsapp.com",
    "telegram.org",
    "vk.com",
)
EMAIL = ("mail.google.com", "outlook.live.com", "outlook.office.com", "mail.yahoo.", "mail.proton.me")


@lru_cache(maxsize=20_000)
def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _matches(host: str, patterns: tuple[str, ...]) -> bool:
    return any(
        host == p or host.endswith("." + p) or (p.endswith(".") and p in host + ".") or host.startswith(p)
        for p in patterns
    )


@lru_cache(maxsize=10_000)
def medium_of(referrer_host: str, page_host: str, utm_medium: str) -> str:
    if utm_medium.lower() in ("email", "e-mail", "newsletter"):
        return "email"
    if not referrer_host:
        return "direct"
    if page_host and (referrer_host == page_host or referrer_host.endswith("." + page_host)):
        return "internal"
    if _matches(referrer_host, EMAIL):
        return "email"
    if _matches(referrer_host, SEARCH):
        return "search"
    if _matches(referrer_host, SOCIAL):
        return "social"
    return "other"


def enrich_referrer(context: dict[str, Any], utm_medium: str) -> dict[str, Any]:
    page = object_at(context, "page")
    referrer = object_at(context, "referrer")
    url = page.get("referrer") or referrer.get("url") or referrer.get("link") or ""
    referrer_host = _host(url) if isinstance(url, str) else ""
    page_host = _host(page["url"]) if isinstance(page.get("url"), str) else ""
    return {
        "referrer_domain": referrer_host,
        "referrer_medium": medium_of(referrer_host, page_host, utm_medium),
    }
