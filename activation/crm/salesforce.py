"""Salesforce as a CRM source: config, objects, response classification and OAuth refresh.

Facts (reference/crm-sources.md §2): calls go to the org's `instance_url` (config; a token response's
own `instance_url` is not followed, so credentials only ever go where the admin pointed them). An
expired session is 401 `INVALID_SESSION_ID`: refresh once. The org allowance is signalled in every
response's `Sforce-Limit-Info: api-usage=N/M`; the pull stops (and resumes at the next scheduled run)
once usage passes `max_api_usage_pct`, or on 403 `REQUEST_LIMIT_EXCEEDED` (Salesforce never sends 429).
Errors are arrays of `{message, errorCode}`; an expired query locator is 400 `INVALID_QUERY_LOCATOR`.
"""

from __future__ import annotations

from typing import Any

from activation.crm.client import CrmClient
from activation.crm.records import DEAL, GROUP, PERSON, ObjectSpec
from activation.crm.salesforce_pull import Classifier, SalesforceConfig, SalesforcePuller
from activation.destinations.base import Config, Credentials
from activation.destinations.config import ConfigReader
from activation.destinations.oauth import refresh_access_token
from activation.net import HttpClient

_PERSON = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "Email": "email",
    "Phone": "phone",
    "MobilePhone": "mobile_phone",
    "Title": "title",
}
_LEAD_PERSON = {k: v for k, v in _PERSON.items() if k != "MobilePhone"}
OBJECTS = {
    "Contact": ObjectSpec(
        "Contact", PERSON, "salesforce_contact_id", {**_PERSON, "AccountId": "salesforce_account_id"},
        "Email", ("Phone", "MobilePhone"),
    ),
    "Lead": ObjectSpec(
        "Lead", PERSON, "salesforce_lead_id",
        {**_LEAD_PERSON, "Company": "company", "Status": "lead_status"},
        "Email", ("Phone",),
    ),
    "Account": ObjectSpec(
        "Account", GROUP, "salesforce_account_id",
        {"Name": "group_name", "Website": "domain", "Industry": "industry", "Phone": "group_phone",
         "NumberOfEmployees": "employees", "AnnualRevenue": "annual_revenue"},
    ),
    "Opportunity": ObjectSpec(
        "Opportunity", DEAL, "salesforce_opportunity_id",
        {"Name": "name", "Amount": "amount", "StageName": "stage", "CloseDate": "close_date",
         "IsClosed": "closed", "IsWon": "won", "AccountId": "account_id"},
    ),
}  # fmt: skip
_KEYS = {"instance_url", "login_url", "api_version", "objects", "overlap_s", "page_size", "bulk_first_load",
         "max_api_usage_pct", "bulk_poll_ms", "every_s"}  # fmt: skip


def read_config(config: Config) -> tuple[SalesforceConfig, dict[str, str]]:
    r = ConfigReader(config)
    objects = config.get("objects", list(OBJECTS))
    if not isinstance(objects, list) or not objects or any(o not in OBJECTS for o in objects):
        r.errors["objects"] = f"must be a non-empty list of {', '.join(OBJECTS)}"
        objects = list(OBJECTS)
    parsed = SalesforceConfig(
        instance_url=r.url("instance_url"),
        login_url=r.url("login_url", default="https://login.salesforce.com"),
        api_version=r.text("api_version", default="v61.0", pattern=r"v\d{2}\.0"),
        objects=tuple(o for o in OBJECTS if o in objects),
        overlap_s=r.integer("overlap_s", default=300, low=0, high=86_400),
        page_size=r.integer("page_size", default=2000, low=200, high=2000),
        bulk_first_load=r.flag("bulk_first_load", default=True),
        max_api_usage_pct=r.integer("max_api_usage_pct", default=80, low=1, high=100),
        bulk_poll_s=r.integer("bulk_poll_ms", default=2000, low=10, high=60_000) / 1000,
        every_s=r.integer("every_s", default=900, low=60, high=86_400),
    )
    r.errors.update({k: "unknown field" for k in sorted(set(config) - _KEYS)})
    return parsed, r.errors


class SalesforcePlatform:
    type = "salesforce"

    def validate_config(self, config: Config) -> dict[str, str]:
        return read_config(config)[1]

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        needed = ("refresh_token", "client_id", "client_secret")
        return {k: "is required" for k in needed if not credentials.get(k)}

    def endpoint_urls(self, config: Config) -> list[str]:
        cfg = read_config(config)[0]
        return [cfg.instance_url, cfg.token_url]

    def objects(self, config: Config) -> list[ObjectSpec]:
        return [OBJECTS[o] for o in read_config(config)[0].objects]

    def every_s(self, config: Config) -> int:
        return read_config(config)[0].every_s

    def client(self, session: HttpClient, credentials: Credentials, config: Config, **kw: Any) -> CrmClient:
        cfg = read_config(config)[0]

        async def refresh(http: HttpClient, current: Credentials) -> Credentials:
            return await refresh_access_token(http, cfg.token_url, current, "salesforce")

        return CrmClient(session, credentials, Classifier(cfg.max_api_usage_pct), refresh, **kw)

    def puller(self, client: CrmClient, config: Config) -> SalesforcePuller:
        return SalesforcePuller(client, read_config(config)[0])
