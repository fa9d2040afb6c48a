"""Campaign enrichment: utm_* parameters and ad-platform click ids.

`context.campaign` (what Segment libraries send: name, source, medium, term, content) wins; the
page URL's query string fills the gaps.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from collector.row import object_at

CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id")
_UTM = {"source": "source", "medium": "medium", "campaign": "name", "term": "term", "content": "content"}
MAX_VALUE = 512
_NONE: dict[str, Any] = {}
_UTM_KEYS = tuple((f"utm_{utm}", utm, key) for utm, key in _UTM.items())  # (column, utm, Segment's key)
_MARKERS = re.compile("utm_|" + "|".join(CLICK_IDS))  # parse the query only when it can matter


@lru_cache(maxsize=20_000)
def _query(url: str) -> dict[str, str]:
    """The campaign-relevant query parameters of a page URL (cached: page URLs repeat)."""
    if "?" not in url or not _MARKERS.search(url):
        return {}
    try:
        pairs = parse_qsl(urlsplit(url).query, keep_blank_values=False)
    except ValueError:
        return {}
    return {k: v for k, v in pairs if k.startswith("utm_") or k in CLICK_IDS}


def enrich_campaign(context: dict[str, Any]) -> dict[str, Any]:
    """The campaign columns (callers only read the returned dict: it may be a cached one)."""
    campaign = object_at(context, "campaign")
    url = object_at(context, "page").get("url")
    if not campaign:
        return _campaign_of_url(url) if type(url) is str else _NONE
    query = _query(url) if type(url) is str else {}
    out: dict[str, Any] = {}
    for column, utm, segment_key in _UTM_KEYS:
        value = campaign.get(segment_key) or campaign.get(utm) or query.get(column)
        if value:
            out[column] = str(value)[:MAX_VALUE]
    for click_id in CLICK_IDS:
        value = campaign.get(click_id) or query.get(click_id)
        if value:
            out["click_id_type"], out["click_id"] = click_id, str(value)[:MAX_VALUE]
            break
    return out


@lru_cache(maxsize=20_000)
def _campaign_of_url(url: str) -> dict[str, Any]:
    return _from_query(_query(url))


def _from_query(query: dict[str, str]) -> dict[str, Any]:
    """The columns of a page URL's query alone (no context.campaign)."""
    out: dict[str, Any] = {}
    for column, _, _ in _UTM_KEYS:
        value = query.get(column)
        if value:
            out[column] = value[:MAX_VALUE]
    for click_id in CLICK_IDS:
        value = query.get(click_id)
        if value:
            out["click_id_type"], out["click_id"] = click_id, value[:MAX_VALUE]
            break
    return out
