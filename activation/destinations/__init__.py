"""Destination types: one stateless object per platform, looked up by type name in REGISTRY."""

from activation.destinations.base import (
    AuthExpiredError,
    Credentials,
    Destination,
    DestinationError,
    DestinationType,
    Erasure,
    Member,
    PermanentError,
    RecordFailure,
    RejectedError,
    RetryableError,
    SendResult,
    SupportsConnectionTest,
    SupportsDeletion,
    SupportsErasure,
    SupportsTokenRefresh,
    SyncBatch,
)
from activation.destinations.braze import BrazeDestination
from activation.destinations.customerio import CustomerIoDestination
from activation.destinations.events import EVENT_ONLY  # event-only types: ga4, mixpanel, …
from activation.destinations.google_ads import GoogleAdsDestination
from activation.destinations.hubspot import HubSpotDestination
from activation.destinations.klaviyo import KlaviyoDestination
from activation.destinations.linkedin import LinkedInDestination
from activation.destinations.mailchimp import MailchimpDestination
from activation.destinations.meta import MetaDestination
from activation.destinations.salesforce import SalesforceDestination
from activation.destinations.sendgrid import SendGridDestination
from activation.destinations.tiktok import TikTokDestination
from activation.destinations.webhook import WebhookDestination

REGISTRY: dict[str, DestinationType] = {
    "google_ads": GoogleAdsDestination(),
    "meta": MetaDestination(),
    "mailchimp": MailchimpDestination(),
    "hubspot": HubSpotDestination(),
    "webhook": WebhookDestination(),
    **EVENT_ONLY,
    "customerio": CustomerIoDestination(),
    "tiktok": TikTokDestination(),
    "linkedin": LinkedInDestination(),
    "salesforce": SalesforceDestination(),
    "sendgrid": SendGridDestination(),
    "braze": BrazeDestination(),
    "klaviyo": KlaviyoDestination(),
}

__all__ = [
    "REGISTRY",
    "AuthExpiredError",
    "Credentials",
    "Destination",
    "DestinationError",
    "DestinationType",
    "Erasure",
    "Member",
    "PermanentError",
    "RecordFailure",
    "RejectedError",
    "RetryableError",
    "SendResult",
    "SupportsConnectionTest",
    "SupportsDeletion",
    "SupportsErasure",
    "SupportsTokenRefresh",
    "SyncBatch",
]
