"""CRM sources through the admin SourceStore: type, config and write-only credentials, validation
(400 naming fields, values never quoted), the outbound allow-list, and re-entering credentials when
the config moves where they are sent."""

from __future__ import annotations

import pytest

from activation.admin.errors import ApiError
from activation.admin.sources import SourceStore, public
from activation.crm.sources import CrmSourceSettings
from activation.net import parse_allow_list
from tests.activation.crm.conftest import ALLOW, OAUTH, SECRET_KEY, Crm


def store(crm: Crm, allow: str | None = None) -> SourceStore:
    allowed = ALLOW if allow is None else parse_allow_list(allow)
    return SourceStore(crm.services.db, None, CrmSourceSettings(crm.services.db, SECRET_KEY, allowed))


async def test_crm_source_shows_type_config_and_credential_names_only(crm: Crm) -> None:
    created = await store(crm).create(
        {"name": "hs", "type": "hubspot", "config": {"base_url": "http://127.0.0.1:9"}, "credentials": OAUTH}
    )
    shown = public(await store(crm).get(created["id"]))
    assert shown["type"] == "hubspot" and shown["config"] == {"base_url": "http://127.0.0.1:9"}
    assert shown["credential_names"] == sorted(OAUTH)
    assert "refresh-1" not in str(shown) and "client-secret" not in str(shown)
    tracking = public(await store(crm).create({"name": "site"}))
    assert tracking["type"] == "tracking" and "config" not in tracking


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"type": "zoho"}, "type"),
        ({"type": "hubspot", "config": {"base_url": "ftp://x"}, "credentials": OAUTH}, "config.base_url"),
        ({"type": "hubspot", "config": {"objects": ["tickets"]}, "credentials": OAUTH}, "config.objects"),
        ({"type": "hubspot", "config": {"pages": 3}, "credentials": OAUTH}, "config.pages"),
        ({"type": "hubspot", "config": {}, "credentials": {"client_id": "x"}}, "credentials.access_token"),
        ({"type": "salesforce", "config": {}, "credentials": OAUTH}, "config.instance_url"),
        (
            {"type": "salesforce", "config": {"instance_url": "http://127.0.0.1:9"}, "credentials": {}},
            "credentials.refresh_token",
        ),
        ({"config": {"base_url": "http://127.0.0.1:9"}}, "config"),  # a tracking source has no config
        ({"type": "hubspot", "credentials": {"access_token": 5}}, "credentials"),
    ],
)
async def test_invalid_crm_sources_are_400_naming_the_field(
    crm: Crm, fields: dict[str, object], bad: str
) -> None:
    with pytest.raises(ApiError) as caught:
        await store(crm).create({"name": "x", **fields})
    assert caught.value.status == 400 and bad in caught.value.fields, caught.value.fields
    assert "client-secret" not in str(caught.value.fields)


async def test_private_endpoints_are_refused_unless_allow_listed(crm: Crm) -> None:
    fields = {
        "name": "x",
        "type": "hubspot",
        "config": {"base_url": "http://127.0.0.1:9"},
        "credentials": OAUTH,
    }
    with pytest.raises(ApiError) as caught:
        await store(crm, allow="").create(fields)
    assert (caught.value.status, caught.value.code) == (400, "unsafe_destination")
    metadata = {**fields, "config": {"base_url": "http://169.254.169.254"}}
    with pytest.raises(ApiError):
        await store(crm).create(metadata)


async def test_moving_the_endpoint_needs_the_credentials_again(crm: Crm) -> None:
    created = await store(crm).create(
        {
            "name": "sf",
            "type": "salesforce",
            "config": {"instance_url": "http://127.0.0.1:9"},
            "credentials": OAUTH,
        }
    )
    moved = {"config": {"instance_url": "http://localhost:9"}}
    with pytest.raises(ApiError) as caught:
        await store(crm).update(created["id"], moved)
    assert "credentials" in caught.value.fields
    with pytest.raises(ApiError):
        await store(crm).update(created["id"], {"type": "hubspot"})
    updated = await store(crm).update(created["id"], {**moved, "credentials": OAUTH})
    assert updated["config"] == moved["config"] and updated["name"] == "sf"
    renamed = await store(crm).update(created["id"], {"name": "sf2"})  # no CRM field: config kept
    assert renamed["config"] == moved["config"] and renamed["type"] == "salesforce"
