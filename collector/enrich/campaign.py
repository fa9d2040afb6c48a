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
    campaign = object_at(context, "campaign")
    url = object_at(context, "page").get("url")
    query = _query(url) if type(url) is str else {}
    if not campaign and not query:
        return {}
    out: dict[str, Any] = {}
    for utm, segment_key in _UTM.items():
        value = campaign.get(segment_key) or campaign.get(utm) or query.get(f"utm_{utm}")
        if value:
            out[f"utm_{utm}"] = str(value)[:MAX_VALUE]
    for click_id in CLICK_IDS:
        value = campaign.get(click_id) or query.get(click_id)
        if value:
            out["click_id_type"], out["click_id"] = click_id, str(value)[:MAX_VALUE]
            break
    return out
