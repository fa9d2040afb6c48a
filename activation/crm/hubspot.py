"""HubSpot as a CRM source: config, objects, response classification and OAuth refresh.

Facts (reference/crm-sources.md §1): search is limited to 10,000 results per query (400 past it) and
5 requests/s per account with no rate-limit headers, so search calls are spaced client-side; other
calls carry `X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds` and a 429 body names its
`policyName` (`TEN_SECONDLY_ROLLING`: wait the interval; `DAILY`: stop the run). Access tokens live
30 minutes: an absent token is refreshed before the first call, a 401 once per run.
"""

from __future__ import annotations

from typing import Any

from activation.crm.client import Classify, CrmClient, LimitReached, Throttled
from activation.crm.hubspot_pull import HubSpotPuller, PullConfig
from activation.crm.records import DEAL, GROUP, PERSON, ObjectSpec
from activation.destinations.base import (
    AuthExpiredError,
    Config,
    Credentials,
    PermanentError,
    RetryableError,
)
from activation.destinations.config import ConfigReader
from activation.destinations.http import as_dict, excerpt
from activation.destinations.oauth import refresh_access_token
from activation.net import HttpClient, HttpResponse

CONTACT_FIELDS = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "mobilephone": "mobile_phone",
    "company": "company",
    "jobtitle": "title",
    "lifecyclestage": "lifecycle_stage",
    "hs_lead_status": "lead_status",
    "city": "city",
    "country": "country",
}
COMPANY_FIELDS = {
    "name": "group_name",
    "domain": "domain",
    "industry": "industry",
    "numberofemployees": "employees",
    "annualrevenue": "annual_revenue",
    "phone": "group_phone",
    "city": "city",
    "country": "country",
}
DEAL_FIELDS = {
    "dealname": "name",
    "amount": "amount",
    "dealstage": "stage",
    "closedate": "close_date",
    "hs_is_closed": "closed",
    "hs_is_closed_won": "won",
}
OBJECTS = {
    "contacts": ObjectSpec(
        "contacts", PERSON, "hubspot_contact_id", CONTACT_FIELDS, "email", ("phone", "mobilephone")
    ),
    "companies": ObjectSpec("companies", GROUP, "hubspot_company_id", COMPANY_FIELDS),
    "deals": ObjectSpec("deals", DEAL, "hubspot_deal_id", DEAL_FIELDS),
}


_KEYS = {"base_url", "token_url", "objects", "overlap_s", "page_size", "search_cap", "search_interval_ms",
         "every_s"}  # fmt: skip


def read_config(config: Config) -> tuple[PullConfig, dict[str, str]]:
    r = ConfigReader(config)
    base_url = r.url("base_url", default="https://api.hubapi.com")
    objects = config.get("objects", list(OBJECTS))
    if not isinstance(objects, list) or not objects or any(o not in OBJECTS for o in objects):
        r.errors["objects"] = f"must be a non-empty list of {', '.join(OBJECTS)}"
        objects = list(OBJECTS)
    parsed = PullConfig(
        base_url=base_url,
        token_url=r.url("token_url", default=f"{base_url}/oauth/v1/token"),
        objects=tuple(o for o in OBJECTS if o in objects),  # contacts before companies before deals
        overlap_s=r.integer("overlap_s", default=300, low=0, high=86_400),
        page_size=r.integer("page_size", default=100, low=1, high=200),
        search_cap=r.integer("search_cap", default=10_000, low=100, high=10_000),
        search_interval_s=r.integer("search_interval_ms", default=220, low=0, high=10_000) / 1000,
        every_s=r.integer("every_s", default=900, low=60, high=86_400),
    )
    r.errors.update({k: "unknown field" for k in sorted(set(config) - _KEYS)})
    return parsed, r.errors


def classify(response: HttpResponse) -> None:
    status = response.status
    if status < 300:
        return
    body = as_dict(response.json())
    message = excerpt(body.get("message") or body.get("category") or f"HTTP {status}")
    interval_s = _number(response.headers.get("x-hubspot-ratelimit-interval-milliseconds"), 1000) / 1000
    if status == 429:
        if body.get("policyName") == "DAILY":
            raise LimitReached(f"hubspot: daily API limit reached ({message})")
        raise Throttled(f"hubspot: rate limited ({message})", interval_s)
    if status == 401:
        raise AuthExpiredError(f"hubspot: {message}")
    if status >= 500:
        raise RetryableError(f"hubspot: HTTP {status}")
    raise PermanentError(f"hubspot: HTTP {status} {body.get('category', '')}: {message}")


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


class HubSpotPlatform:
    type = "hubspot"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        if credentials.get("access_token") or all(
            credentials.get(k) for k in ("refresh_token", "client_id", "client_secret")
        ):
            return {}
        return {"access_token": "is required (or refresh_token, client_id and client_secret)"}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.base_url, cfg.token_url]

    def objects(self, config: Config) -> list[ObjectSpec]:
        return [OBJECTS[o] for o in read_config(config)[0].objects]

    def every_s(self, config: Config) -> int:
        return read_config(config)[0].every_s

    def client(self, session: HttpClient, credentials: Credentials, config: Config, **kw: Any) -> CrmClient:
        token_url = read_config(config)[0].token_url

        async def refresh(http: HttpClient, current: Credentials) -> Credentials:
            return await refresh_access_token(http, token_url, current, "hubspot")

        check: Classify = classify
        return CrmClient(session, credentials, check, refresh, **kw)

    def puller(self, client: CrmClient, config: Config) -> HubSpotPuller:
        return HubSpotPuller(client, read_config(config)[0])
