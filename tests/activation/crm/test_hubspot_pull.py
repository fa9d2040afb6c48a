"""HubSpot pulls through the job against the fake CRM: profiles, groups, deals, incremental
watermark, the 10k search cap, a crash between a page and its cursor, throttling, token expiry,
merges and deletions."""

from __future__ import annotations

from typing import Any

import pytest

from activation.crm import pull as pull_module
from activation.crm import store
from activation.crm.sources import CrmSourceSettings
from tests.activation.crm.conftest import ALLOW, OAUTH, SECRET_KEY, Crm
from tests.fakes.hubspot_crm import FakeHubSpotCrm


def config(fake: FakeHubSpotCrm, **extra: Any) -> dict[str, Any]:
    return {"base_url": fake.base_url, "overlap_s": 0, **extra}


def seed(fake: FakeHubSpotCrm, crm: Crm) -> dict[str, str]:
    ids = {
        "acme": fake.put("companies", {"name": "Acme Inc", "domain": "acme.test", "phone": crm.phone}),
        "ann": fake.put(
            "contacts", {"email": crm.email("ann"), "firstname": "Ann", "lastname": f"Lee{crm.uid}"}
        ),
        "bob": fake.put("contacts", {"email": crm.email("bob"), "firstname": "Bob", "phone": crm.phone}),
    }
    fake.associate("contacts", ids["ann"], "companies", ids["acme"])
    ids["deal"] = fake.put(
        "deals", {"dealname": "Big", "amount": "1200", "dealstage": "appointmentscheduled"}
    )
    fake.associate("deals", ids["deal"], "contacts", ids["ann"])
    fake.associate("deals", ids["deal"], "companies", ids["acme"])
    return ids


async def test_pull_makes_profiles_groups_and_deal_traits(crm: Crm, hubspot: FakeHubSpotCrm) -> None:
    ids = seed(hubspot, crm)
    source = await crm.source("hubspot", config(hubspot), {"access_token": "access-1"})
    result = await crm.pull(source)
    assert result["status"] == "succeeded"
    assert (result["fetched"], result["created"], result["deleted"]) == (4, 4, 0)
    ann = crm.traits("email", crm.email("ann"))  # a CRM record with no web activity is a profile
    assert ann["first_name"] == "Ann" and ann["crm"] == "hubspot"
    assert ann["groups"] == [f"ext:hubspot_company_id:{ids['acme']}"]
    assert ann["hubspot_deal_count"] == 1 and ann["hubspot_deal_amount_open"] == 1200
    acme = crm.traits("ext:hubspot_company_id", ids["acme"])
    assert acme["profile_kind"] == "group" and acme["group_name"] == "Acme Inc"
    assert acme["hubspot_deal_count"] == 1
    # the company's phone is a trait, not an identifier: Bob (same number) stays his own person
    assert crm.profile("phone", crm.phone) == crm.profile("email", crm.email("bob"))
    doc = crm.profile("email", crm.email("ann"))
    assert doc is not None and doc["traits"]["first_name"]["source_id"] == f"import:{source}"


async def test_incremental_pull_reads_only_what_changed(crm: Crm, hubspot: FakeHubSpotCrm) -> None:
    ids = seed(hubspot, crm)
    hubspot.touch("contacts", ids["ann"], at_ms=hubspot.clock_ms - 5000)  # Ann changed a while ago
    hubspot.clock_ms += 5000
    people = config(hubspot, objects=["contacts"])
    source = await crm.source("hubspot", people, {"access_token": "access-1"})
    assert (await crm.pull(source))["fetched"] == 2
    hubspot.update("contacts", ids["bob"], jobtitle="CTO")
    second = await crm.pull(source)  # GTE the watermark: Bob (changed), not Ann
    assert (second["fetched"], second["created"], second["updated"]) == (1, 0, 1)
    assert crm.traits("email", crm.email("bob"))["title"] == "CTO"
    overlapping = await crm.source("hubspot", {**people, "overlap_s": 86_400}, {"access_token": "access-1"})
    await crm.pull(overlapping)
    again = await crm.pull(overlapping)  # the overlap re-reads both: rewritten, never doubled
    assert again["fetched"] == 2 and again["created"] == 0 and again["updated"] == 2


async def test_search_past_the_result_cap_rewindows_without_gaps(crm: Crm) -> None:
    async with FakeHubSpotCrm(search_cap=100) as fake:
        start = fake.clock_ms  # a day ago: one record per millisecond, seven sharing each 10th
        for n in range(250):
            fake.put("contacts", {"email": crm.email(f"c{n}")}, at_ms=start + n - n % 10 * (n % 10 < 7))
        source = await crm.source(
            "hubspot",
            config(fake, search_cap=100, page_size=30, objects=["contacts"]),
            {"access_token": "access-1"},
        )
        result = await crm.pull(source)
        assert result["status"] == "succeeded" and result["created"] == 250
        searches = [r for r in fake.requests_to("/search")]
        assert all(r.method == "POST" for r in searches) and len(searches) > 250 // 30
        rows = crm.ch.query(
            "SELECT count() FROM identity_records FINAL WHERE batch_id = {s:String} AND deleted = 0",
            parameters={"s": source},
        ).result_rows
        assert rows[0][0] == 250


async def test_crash_after_a_page_before_its_cursor_resumes_without_gaps_or_doubles(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeHubSpotCrm() as fake:
        for n in range(50):
            fake.put("contacts", {"email": crm.email(f"k{n}")}, at_ms=fake.clock_ms + n)
        source = await crm.source(
            "hubspot", config(fake, page_size=10, objects=["contacts"]), {"access_token": "access-1"}
        )
        real, calls = store.write_cursor, []

        async def crashing(*args: Any) -> None:
            calls.append(args)
            if len(calls) == 3:
                raise SystemExit("worker killed")  # page 3 is applied, its cursor never saved
            await real(*args)

        monkeypatch.setattr(pull_module.store, "write_cursor", crashing)
        with pytest.raises(SystemExit):
            await crm.pull(source)
        monkeypatch.setattr(pull_module.store, "write_cursor", real)
        assert (await crm.runs(source))[0]["status"] == "interrupted"
        resumed = await crm.pull(source)
        assert resumed["status"] == "succeeded"
        assert resumed["fetched"] == 30 and resumed["created"] == 20 and resumed["updated"] == 10
        first_search = [r for r in fake.requests_to("/search")][3]
        assert b'"after":"20"' in first_search.body  # resumed at page 3, not at the start


async def test_throttled_page_waits_the_signalled_interval_and_daily_limit_stops(
    crm: Crm, hubspot: FakeHubSpotCrm
) -> None:
    seed(hubspot, crm)
    hubspot.inject("throttle", path="/associations", interval_ms=40)
    source = await crm.source("hubspot", config(hubspot), {"access_token": "access-1"})
    assert (await crm.pull(source))["status"] == "succeeded"
    hubspot.put("contacts", {"email": crm.email("late")})
    hubspot.inject("throttle", times=None, path="/search", policy="DAILY")
    stopped = await crm.pull(source)
    assert stopped["status"] == "throttled"
    assert "daily" in (await crm.runs(source))[0]["messages"][0]
    hubspot.faults.clear()
    resumed = await crm.pull(source)
    assert resumed["created"] == 1


async def test_expired_token_is_refreshed_once_and_stored_sealed(crm: Crm, hubspot: FakeHubSpotCrm) -> None:
    seed(hubspot, crm)
    source = await crm.source("hubspot", config(hubspot), {"access_token": "access-1", **OAUTH})
    hubspot.inject("auth_expired")
    assert (await crm.pull(source))["status"] == "succeeded"
    assert hubspot.refresh_calls == 1
    settings = CrmSourceSettings(crm.services.db, SECRET_KEY, ALLOW)
    stored = await settings.get(source)
    assert stored is not None and settings.credentials(stored)["access_token"] in hubspot.tokens
    rows = crm.ch.query(
        "SELECT credentials FROM crm_sources FINAL WHERE source_id = {s:String}", parameters={"s": source}
    )
    assert "access-" not in rows.result_rows[0][0]


async def test_crm_merges_and_deletions_reach_the_profiles(crm: Crm, hubspot: FakeHubSpotCrm) -> None:
    ids = seed(hubspot, crm)
    carl = hubspot.put("contacts", {"email": crm.email("carl"), "firstname": "Carl"})
    source = await crm.source("hubspot", config(hubspot), {"access_token": "access-1"})
    await crm.pull(source)
    hubspot.merge("contacts", ids["ann"], ids["bob"])
    hubspot.archive("contacts", carl)
    result = await crm.pull(source)
    assert (result["merged"], result["deleted"]) == (1, 1)
    ann = crm.profile("ext:hubspot_contact_id", ids["ann"])
    assert ann is not None and crm.profile("ext:hubspot_contact_id", ids["bob"]) == ann
    assert crm.profile("email", crm.email("carl")) is None  # CRM-only and deleted: no profile
    assert (await crm.pull(source))["merged"] == 0  # counted once
