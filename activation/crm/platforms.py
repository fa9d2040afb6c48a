"""CRM source types by name (the `type` of a source other than `tracking`)."""

from __future__ import annotations

from activation.crm.hubspot import HubSpotPlatform
from activation.crm.pages import Platform
from activation.crm.salesforce import SalesforcePlatform

PLATFORMS: dict[str, Platform] = {"hubspot": HubSpotPlatform(), "salesforce": SalesforcePlatform()}
SOURCE_TYPES = ("tracking", *PLATFORMS)
