"""Event destination types (raw events forwarded by connections), looked up by type in EVENT_REGISTRY.

`webhook` is the same destination type as the audience webhook (a connection's requests carry
`{"events": [...]}`); `ga4`, `mixpanel`, `amplitude`, `braze_events` and `hubspot_events` are
event-only types. Each event-only type is also registered in the audience REGISTRY through
`EventOnly`, so the destinations API creates, validates and SSRF-checks it like any other, while an
audience sync pointed at it fails with a clear reason.
"""

from __future__ import annotations

from activation.destinations.base import Config, Credentials, PermanentError, SendResult, SyncBatch
from activation.destinations.events.amplitude import AmplitudeEvents
from activation.destinations.events.base import EventDestination, EventOutcome, OutboundEvent, RecordsRefused
from activation.destinations.events.braze import BrazeEvents
from activation.destinations.events.ga4 import GA4Events
from activation.destinations.events.hubspot import HubSpotEvents
from activation.destinations.events.mixpanel import MixpanelEvents
from activation.destinations.events.webhook import WebhookEvents
from activation.net import HttpClient


class EventOnly:
    """The audience-side face of an event-only type: config checks delegate; `send` refuses."""

    def __init__(self, events: EventDestination) -> None:
        self.events = events
        self.type = events.type

    def validate_config(self, config: Config) -> dict[str, str]:
        return self.events.validate_config(config)

    def validate_credentials(self, credentials: Credentials) -> dict[str, str]:
        return self.events.validate_credentials(credentials)

    def endpoint_urls(self, config: Config) -> list[str]:
        return self.events.endpoint_urls(config)

    def batch_limit(self, config: Config) -> int:
        return 1

    async def send(
        self, session: HttpClient, batch: SyncBatch, credentials: Credentials, config: Config
    ) -> SendResult:
        raise PermanentError(
            f"{self.type} is an event destination: connect it to a source with /admin/v1/connections"
        )


EVENT_REGISTRY: dict[str, EventDestination] = {
    "webhook": WebhookEvents(),
    "ga4": GA4Events(),
    "mixpanel": MixpanelEvents(),
    "amplitude": AmplitudeEvents(),
    "braze_events": BrazeEvents(),
    "hubspot_events": HubSpotEvents(),
}
EVENT_ONLY = {kind: EventOnly(client) for kind, client in EVENT_REGISTRY.items() if kind != "webhook"}

__all__ = [
    "EVENT_ONLY",
    "EVENT_REGISTRY",
    "EventDestination",
    "EventOutcome",
    "OutboundEvent",
    "RecordsRefused",
]
