"""Every audience destination type of the REGISTRY as a running fake, configured as an operator
would (base URLs aimed at the fakes), and what each holds for a person afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.activation.sync.conftest import CUSTOMER, HS_LIST, MC_LIST, META_AUDIENCE, OAUTH, USER_LIST
from tests.fakes.braze import FakeBraze
from tests.fakes.customerio import FakeCustomerIo
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.mailchimp import FakeMailchimp, md5_lower
from tests.fakes.meta import FakeMeta
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.tiktok import FakeTikTok
from tests.fakes.webhook import FakeWebhookReceiver

CAMPAIGN, SG_LIST, KL_LIST = "701000000000001AAA", "8a6b5c4d-1234-4abc-9def-0123456789ab", "VRgFBd"
CIO_SEGMENT, ADVERTISER, TT_AUDIENCE, DMP_SEGMENT = "7", "7001234567890", "123456", "5501"
# Types whose platform has its own erasure API (SupportsErasure); the others only lose the person
# from their lists (Google Ads, Meta, TikTok, LinkedIn have no person-level deletion call).
ERASING = ("mailchimp", "hubspot", "webhook", "salesforce", "sendgrid", "braze", "klaviyo", "customerio")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()


@dataclass
class Person:
    email: str
    user_id: str
    profile_id: str = ""


@dataclass
class Platforms:
    google_ads: FakeGoogleAds
    meta: FakeMeta
    mailchimp: FakeMailchimp
    hubspot: FakeHubSpot
    webhook: FakeWebhookReceiver
    salesforce: FakeSalesforce
    sendgrid: FakeSendGrid
    braze: FakeBraze
    klaviyo: FakeKlaviyo
    customerio: FakeCustomerIo
    tiktok: FakeTikTok
    linkedin: FakeLinkedIn

    def setup(self, kind: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(config, credentials) of a destination of `kind` aimed at its fake."""
        g, sf, li = self.google_ads.base_url, self.salesforce.base_url, self.linkedin.base_url
        cio = {"site_id": FakeCustomerIo.site_id, "api_key": FakeCustomerIo.api_key}
        setups: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
            "google_ads": (
                {"customer_id": CUSTOMER, "user_list_id": USER_LIST, "base_url": g, "token_url": g + "/token"},
                {"developer_token": "dev-token", "access_token": "access-1", **OAUTH},
            ),
            "meta": ({"audience_id": META_AUDIENCE, "base_url": self.meta.base_url}, {"access_token": "access-1"}),
            "mailchimp": ({"list_id": MC_LIST, "base_url": self.mailchimp.base_url + "/3.0"},
                          {"api_key": FakeMailchimp.api_key}),
            "hubspot": ({"list_id": HS_LIST, "base_url": self.hubspot.base_url}, {"access_token": "access-1", **OAUTH}),
            "webhook": ({"url": self.webhook.url, "batch_size": 500}, {"secret": self.webhook.secret}),
            "salesforce": ({"campaign_id": CAMPAIGN, "instance_url": sf, "token_url": sf + "/services/oauth2/token"},
                           {"access_token": "access-1", **OAUTH}),
            "sendgrid": ({"list_id": SG_LIST, "base_url": self.sendgrid.base_url}, {"api_key": FakeSendGrid.api_key}),
            "braze": ({"base_url": self.braze.base_url}, {"api_key": FakeBraze.api_key}),
            "klaviyo": ({"list_id": KL_LIST, "base_url": self.klaviyo.base_url}, {"api_key": FakeKlaviyo.api_key}),
            "customerio": ({"segment_id": CIO_SEGMENT, "base_url": self.customerio.base_url}, cio),
            "tiktok": ({"advertiser_id": ADVERTISER, "audience_id": TT_AUDIENCE, "base_url": self.tiktok.base_url},
                       {"access_token": "access-1"}),
            "linkedin": ({"segment_id": DMP_SEGMENT, "base_url": li, "token_url": li + "/oauth/v2/accessToken"},
                         {"access_token": "access-1", **OAUTH}),
        }  # fmt: skip
        return setups[kind]

    def holds(self, kind: str, person: Person, audience_key: str) -> bool:
        """Whether the platform holds the person on the audience's list."""
        return self.identifier(kind, person) in self.held(kind, audience_key)

    @staticmethod
    def identifier(kind: str, person: Person) -> str:
        """How the platform knows a person: a SHA-256 of the email for ad platforms, the user id for
        Braze, the profile id for the webhook, the email itself for the rest."""
        if kind in ("google_ads", "meta", "tiktok", "linkedin"):
            return sha256_hex(person.email)
        return {"braze": person.user_id, "webhook": person.profile_id}.get(kind, person.email)

    def held(self, kind: str, audience_key: str) -> set[str]:
        """Everyone the platform holds on the audience's list, by `identifier`."""
        lists = {
            "google_ads": lambda: self.google_ads.members(CUSTOMER, USER_LIST),
            "meta": lambda: self.meta.members(META_AUDIENCE),
            "mailchimp": lambda: self.mailchimp.tagged(MC_LIST, audience_key),
            "hubspot": lambda: self.hubspot.list_emails(HS_LIST),
            "webhook": lambda: self.webhook.members.get(audience_key, set()),
            "salesforce": lambda: self.salesforce.campaign_emails(CAMPAIGN),
            "sendgrid": lambda: self.sendgrid.list_emails(SG_LIST),
            "braze": lambda: self.braze.holding(f"magpie_{audience_key}"),
            "klaviyo": lambda: self.klaviyo.list_emails(KL_LIST),
            "customerio": lambda: self.customerio.segment_emails(CIO_SEGMENT),
            "tiktok": lambda: self.tiktok.members(ADVERTISER, TT_AUDIENCE),
            "linkedin": lambda: self.linkedin.members(DMP_SEGMENT),
        }
        return set(lists[kind]())

    def erased(self, kind: str, person: Person) -> bool:
        """Whether the platform's own erasure API was called for the person, as its fake recorded it
        (and the platform no longer knows them where it keeps people)."""
        email = person.email
        checks = {
            "mailchimp": lambda: md5_lower(email) in self.mailchimp.forgotten
            and self.mailchimp.status_of(MC_LIST, email) is None,
            "hubspot": lambda: email in self.hubspot.gdpr_deleted and self.hubspot.find("email", email) is None,
            "webhook": lambda: any(email in d.get("email", []) for d in self.webhook.deletions),
            "salesforce": lambda: any(r.method == "DELETE" for r in self.salesforce.requests_to("/composite/sobjects"))
            and bool(self.salesforce.deleted),
            "sendgrid": lambda: any(r.method == "DELETE" for r in self.sendgrid.requests_to("/v3/marketing/contacts"))
            and email not in self.sendgrid.contacts,
            "braze": lambda: bool(set(self.braze.deleted) & {("external_id", person.user_id), ("email", email)}),
            "klaviyo": lambda: email in str(self.klaviyo.deletion_requests),
            "customerio": lambda: bool(self.customerio.requests_to("/api/v1/customers/"))
            and self.customerio.find("email", email) is None,
        }  # fmt: skip
        return bool(checks[kind]())


@asynccontextmanager
async def platforms() -> AsyncIterator[Platforms]:
    async with AsyncExitStack() as stack:
        fakes = [
            await stack.enter_async_context(cls())
            for cls in (FakeGoogleAds, FakeMeta, FakeMailchimp, FakeHubSpot, FakeWebhookReceiver, FakeSalesforce,
                        FakeSendGrid, FakeBraze, FakeKlaviyo, FakeCustomerIo, FakeTikTok, FakeLinkedIn)
        ]  # fmt: skip
        p = Platforms(*fakes)  # type: ignore[arg-type]
        p.google_ads.add_user_list(CUSTOMER, USER_LIST)
        p.meta.add_audience(META_AUDIENCE)
        p.mailchimp.add_list(MC_LIST)
        p.hubspot.add_list(HS_LIST)
        p.salesforce.add_campaign(CAMPAIGN)
        p.sendgrid.add_list(SG_LIST)
        p.klaviyo.add_list(KL_LIST)
        p.customerio.add_segment(CIO_SEGMENT)
        p.tiktok.add_audience(ADVERTISER, TT_AUDIENCE)
        p.linkedin.add_segment(DMP_SEGMENT)
        yield p
