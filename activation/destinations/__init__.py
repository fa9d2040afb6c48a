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
from activation.destinations.customerio import CustomerIoDestination
from activation.destinations.google_ads import GoogleAdsDestination
from activation.destinations.hubspot import HubSpotDestination
from activation.destinations.linkedin import LinkedInDestination
from activation.destinations.mailchimp import MailchimpDestination
from activation.destinations.meta import MetaDestination
from activation.destinations.tiktok import TikTokDestination
from activation.destinations.webhook import WebhookDestination

REGISTRY: dict[str, DestinationType] = {
    "google_ads": GoogleAdsDestination(),
    "meta": MetaDestination(),
    "mailchimp": MailchimpDestination(),
    "hubspot": HubSpotDestination(),
    "webhook": WebhookDestination(),
    "customerio": CustomerIoDestination(),
    "tiktok": TikTokDestination(),
    "linkedin": LinkedInDestination(),
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
