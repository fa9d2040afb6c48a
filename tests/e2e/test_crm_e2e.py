"""Issue 11's "done when" through the real `magpie serve`: web visitors → HubSpot and Salesforce
sources (created through the admin API, OAuth credentials write-only) pulled incrementally, with a
throttled page, a page that fails for good, and a kill -9 of the worker mid-page (the supervisor
restarts it; the next pull resumes from the saved cursor: no gap, no duplicate) → unified profiles
with CRM traits, group (company/account) profiles and links, a fuzzy name + phone proposal accepted,
a CRM merge and a CRM deletion reflected → an audience mixing CRM traits and web behaviour → synced
to all twelve audience destinations (each fake holds exactly the computed members, by the identifier
it gets) and its members' traits written back to both CRMs, whose final state equals what was computed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from activation.crm.pull import LOCK_TTL_S
from activation.destinations import REGISTRY
from activation.destinations.events import EVENT_ONLY
from magpie.embedded_redis import socket_path
from tests.e2e.platforms import Person, Platforms, platforms
from tests.e2e.test_activation_e2e import Shop, admin, eventually, run_audience, runs_of, sync_all
from tests.fakes.hubspot_crm import FakeHubSpotCrm
from tests.fakes.salesforce_crm import FakeSalesforceCrm
from tests.server import ServerProcess

AUDIENCE_TYPES = sorted(set(REGISTRY) - set(EVENT_ONLY))
OAUTH = {"refresh_token": "refresh-1", "client_id": "client-id", "client_secret": "client-secret"}


async def profile(server: ServerProcess, identifier: str) -> dict[str, Any] | None:
    response = await asyncio.to_thread(server.http.get, f"/v1/profiles/{identifier}", headers=server.auth)
    return response.json() if response.status_code == 200 else None


def traits(doc: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v["value"] for k, v in (doc or {}).get("traits", {}).items()}


async def pull(server: ServerProcess, source_id: str) -> dict[str, Any]:
    before = {r["id"] for r in (await admin(server, "GET", f"/sources/{source_id}/pulls")).json()["data"]}
    started = await admin(server, "POST", f"/sources/{source_id}/pull")
    assert started.status_code == 202, started.text

    async def finished() -> dict[str, Any] | None:
        runs = (await admin(server, "GET", f"/sources/{source_id}/pulls")).json()["data"]
        new = [r for r in runs if r["id"] not in before and r["status"] != "running"]
        return new[0] if new else None

    run = await eventually(finished, 90)
    assert run, f"pull did not finish\n{server.log()[-3000:]}"
    return dict(run)


def seed_crms(shop: Shop, hs: FakeHubSpotCrm, sf: FakeSalesforceCrm) -> dict[str, str]:
    ids = {"acme": hs.put("companies", {"name": "Acme", "domain": "acme.test"})}
    ids["ann"] = hs.put(
        "contacts", {"email": shop.email(1), "firstname": "Ann", "lifecyclestage": "customer"}
    )
    ids["ben"] = hs.put(
        "contacts", {"firstname": "Ben", "lastname": f"Fuzz{shop.ns}", "phone": "07700 900123"}
    )
    ids["carl"] = hs.put("contacts", {"email": shop.email(3), "firstname": "Carl"})
    ids["cal"] = hs.put("contacts", {"email": f"cal.{shop.ns}@example.com", "firstname": "Cal"})
    for n in range(8):  # enough contacts for several search pages
        hs.put("contacts", {"email": f"lead{n}.{shop.ns}@example.com"})
    hs.associate("contacts", ids["ann"], "companies", ids["acme"])
    ids["globex"] = sf.put("Account", Name="Globex")
    ids["eve"] = sf.put(
        "Contact", LastName="Eve", Email=shop.email(4), Title="Buyer", AccountId=ids["globex"]
    )
    ids["gone"] = sf.put("Lead", LastName="Gone", Email=f"gone.{shop.ns}@example.com", Company="G")
    return ids


async def crash_mid_page_then_resume(
    server: ServerProcess, hs: FakeHubSpotCrm, hub_id: str
) -> dict[str, Any]:
    """kill -9 of the worker while a contacts page is in flight (its search read, its associations
    hanging): the supervisor restarts the worker, the dead run's lock expires, the next pull marks
    the dead run interrupted and resumes from the last saved cursor."""
    hs.inject("pass", times=1, path="/associations/contacts/")  # the first page goes through...
    hs.inject("hang", times=1, path="/associations/contacts/")  # ...the second hangs mid-page
    seen = len(hs.requests_to("/associations/contacts/"))
    assert (await admin(server, "POST", f"/sources/{hub_id}/pull")).status_code == 202

    async def hanging() -> bool:
        return len(hs.requests_to("/associations/contacts/")) >= seen + 2 and hs.in_flight > 0

    assert await eventually(hanging, 60, 0.05), server.log()[-3000:]
    worker = server.children()["worker"]
    os.kill(worker, signal.SIGKILL)

    async def restarted() -> bool:
        return server.children().get("worker", worker) != worker

    assert await eventually(restarted, 30, 0.2), "the supervisor did not restart the worker"
    redis = aioredis.Redis(unix_socket_path=str(socket_path(server.data_dir)))
    try:  # the dead worker's lock still holds, for at most its TTL: let that pass now
        key = f"magpie:sync:lock:crm:{hub_id}"
        assert 0 < await redis.pttl(key) <= LOCK_TTL_S * 1000
        await redis.pexpire(key, 1)
    finally:
        await redis.aclose()
    resumed = await pull(server, hub_id)
    runs = (await admin(server, "GET", f"/sources/{hub_id}/pulls")).json()["data"]
    dead = [r for r in runs if r["status"] == "interrupted"]
    assert len(dead) == 1 and dead[0]["created"] == 3, runs  # one page applied before the crash
    return {**resumed, "created": resumed["created"] + dead[0]["created"]}


async def pull_hubspot_through_faults(server: ServerProcess, hs: FakeHubSpotCrm, hub_id: str) -> None:
    hs.inject("throttle", times=1, path="/search", interval_ms=50)  # a throttled page: waited out
    hs.inject("error500", times=None, path="/associations")  # ...then every page fails
    failed = await pull(server, hub_id)
    assert failed["status"] == "failed" and failed["errors"] == 1
    hs.faults.clear()
    first = await crash_mid_page_then_resume(server, hs, hub_id)  # resumes from the saved cursor
    assert first["status"] == "succeeded" and first["created"] + failed["created"] == 13  # no gap, no twice
    assert len(hs.requests_to("/search")) >= 6  # 13 contacts in pages of 3, then companies


async def create_sources(server: ServerProcess, hs: FakeHubSpotCrm, sf: FakeSalesforceCrm) -> tuple[str, str]:
    hub = await admin(server, "POST", "/sources", json={
        "name": "HubSpot", "type": "hubspot", "credentials": OAUTH,
        "config": {"base_url": hs.base_url, "page_size": 3, "overlap_s": 0}})  # fmt: skip
    assert hub.status_code == 201, hub.text
    assert hub.json()["type"] == "hubspot" and "refresh_token" in hub.json()["credential_names"]
    assert "refresh-1" not in hub.text  # write-only
    sfdc = await admin(server, "POST", "/sources", json={
        "name": "Salesforce", "type": "salesforce", "credentials": OAUTH,
        "config": {"instance_url": sf.base_url, "login_url": sf.base_url, "overlap_s": 0, "bulk_poll_ms": 20}})  # fmt: skip
    assert sfdc.status_code == 201, sfdc.text
    return hub.json()["id"], sfdc.json()["id"]


async def check_unified_profiles(server: ServerProcess, shop: Shop, ids: dict[str, str]) -> None:
    ann = await profile(server, f"user_id:{shop.user(1)}")  # web visitor matched by email
    assert traits(ann)["lifecycle_stage"] == "customer" and traits(ann)["plan"] == "pro"
    assert traits(ann)["groups"] == [f"ext:hubspot_company_id:{ids['acme']}"]
    acme = await profile(server, f"ext:hubspot_company_id:{ids['acme']}")
    assert traits(acme)["profile_kind"] == "group"
    eve = await profile(server, f"user_id:{shop.user(4)}")
    assert traits(eve)["title"] == "Buyer" and traits(eve)["groups"] == [
        f"ext:salesforce_account_id:{ids['globex']}"
    ]
    assert await profile(server, f"ext:salesforce_lead_id:{ids['gone']}")  # CRM-only: still a profile

    proposals = (await admin(server, "GET", "/identity/proposals?limit=1000")).json()["data"]
    ben = [p for p in proposals if p["record_id"].endswith(f":contacts:{ids['ben']}")]
    assert ben, (ids, proposals)
    if ben[0]["status"] == "open":  # below the auto threshold: a reviewer accepts it
        accepted = await admin(server, "POST", f"/identity/proposals/{ben[0]['proposal_id']}/accept")
        assert accepted.status_code == 200, accepted.text
    merged = await profile(server, f"user_id:{shop.user(2)}")
    assert {"type": "ext:hubspot_contact_id", "value": ids["ben"]} in (merged or {})["identities"]


async def merge_and_delete_in_the_crms(
    server: ServerProcess,
    ids: dict[str, str],
    crms: tuple[FakeHubSpotCrm, FakeSalesforceCrm],
    sources: tuple[str, str],
) -> None:
    (hs, sf), (hub_id, sf_id) = crms, sources
    hs.merge("contacts", ids["carl"], ids["cal"])
    sf.delete("Lead", ids["gone"])
    again = await pull(server, hub_id)
    assert again["merged"] == 1
    assert (await pull(server, sf_id))["deleted"] == 1
    carl = await profile(server, f"ext:hubspot_contact_id:{ids['carl']}")
    assert carl and await profile(server, f"ext:hubspot_contact_id:{ids['cal']}") == carl
    assert await profile(server, f"ext:salesforce_lead_id:{ids['gone']}") is None


async def audience_destinations(server: ServerProcess, fakes: Platforms, ns: str) -> dict[str, str]:
    destinations = {}
    for kind in AUDIENCE_TYPES:
        config, credentials = fakes.setup(kind)
        body = {"type": kind, "name": f"{kind}-crm-{ns}", "config": config, "credentials": credentials}
        created = await admin(server, "POST", "/destinations", json=body)
        assert created.status_code == 201, created.text
        destinations[kind] = created.json()["id"]
    return destinations


async def trait_destinations(
    server: ServerProcess, hs: FakeHubSpotCrm, sf: FakeSalesforceCrm, key: str
) -> list[str]:
    hs_dst = await admin(server, "POST", "/destinations", json={
        "type": "hubspot", "name": "HubSpot traits", "credentials": {"access_token": "access-1", **OAUTH},
        "config": {"mode": "traits", "base_url": hs.base_url, "crm_owned": ["lifecyclestage"],
                   "mapping": {"plan": "magpie_plan", f"audience:{key}": "magpie_buyer",
                               "lifecycle_stage": "lifecyclestage"}}})  # fmt: skip
    sf_dst = await admin(server, "POST", "/destinations", json={
        "type": "salesforce", "name": "Salesforce traits", "credentials": {"access_token": "access-1", **OAUTH},
        "config": {"mode": "traits", "instance_url": sf.base_url, "token_url": f"{sf.base_url}/services/oauth2/token",
                   "mapping": {"plan": "Plan__c", f"audience:{key}": "Buyer__c"}}})  # fmt: skip
    assert hs_dst.status_code == 201 and sf_dst.status_code == 201, (hs_dst.text, sf_dst.text)
    return [hs_dst.json()["id"], sf_dst.json()["id"]]


async def people_of(server: ServerProcess, shop: Shop, audience_id: str) -> list[Person]:
    """The audience's computed members, each with the identifiers its profile holds."""
    page = (await admin(server, "GET", f"/audiences/{audience_id}/members?limit=100")).json()["data"]
    known = {}
    for n in (1, 2, 3, 4):
        doc = await profile(server, f"user_id:{shop.user(n)}")
        if doc:
            emails = [i["value"] for i in doc["identities"] if i["type"] == "email"]
            known[doc["profile_id"]] = Person(emails[0] if emails else "", shop.user(n), doc["profile_id"])
    assert {m["profile_id"] for m in page} <= set(known), (page, known)
    return [known[m["profile_id"]] for m in page]


async def check_trait_write_back(
    server: ServerProcess, shop: Shop, ids: dict[str, str], crms: tuple[FakeHubSpotCrm, FakeSalesforceCrm],
    runs: list[list[dict[str, Any]]],
) -> None:  # fmt: skip
    hs, sf = crms
    hs_runs, sf_runs = runs  # every run of each trait destination for the audience
    # HubSpot: Ann by her record id, Eve upserted by email. Salesforce: Eve by her record id; Ann has
    # no Salesforce record and this destination names no external id field: dead-lettered, not guessed.
    assert {r["status"] for r in hs_runs} == {"succeeded"}, hs_runs
    assert (sum(r["added"] for r in hs_runs), sum(r["failed"] for r in hs_runs)) == (2, 0), hs_runs
    assert {r["status"] for r in sf_runs} <= {"succeeded", "partial"}, sf_runs
    assert sum(r["added"] for r in sf_runs) == 1, sf_runs
    failing = [r for r in sf_runs if r["failed"]]
    assert failing and all(r["status"] == "partial" and r["failed"] == 1 for r in failing), sf_runs
    for run in failing:
        letters = (await admin(server, "GET", f"/syncs/{run['id']}")).json()["dead_letters"]
        assert [d["reason"] for d in letters] == ["no_salesforce_id"]
    assert (
        hs.contacts[ids["ann"]]["magpie_plan"] == "pro" and hs.contacts[ids["ann"]]["magpie_buyer"] == "true"
    )
    assert hs.contacts[ids["ann"]]["lifecyclestage"] == "customer"  # CRM-owned: untouched
    eve_hs = hs.find("email", shop.email(4))
    assert (
        eve_hs
        and hs.contacts[eve_hs]["magpie_buyer"] == "true"
        and hs.contacts[eve_hs]["magpie_plan"] == "pro"
    )
    eve_sf = sf.records["Contact"][ids["eve"]]
    assert eve_sf["Plan__c"] == "pro" and eve_sf["Buyer__c"]
    written = {rid for rid, c in hs.contacts.items() if "magpie_plan" in c}
    assert written == {ids["ann"], eve_hs}  # exactly the audience's members
    sf_written = {
        rid for kind in ("Contact", "Lead") for rid, r in sf.records[kind].items() if "Plan__c" in r
    }
    assert sf_written == {ids["eve"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Its own `magpie serve`: this test kill -9s the worker, and a worker killed while it held the
    stitch lock would stall stitching on the session's shared server until the lock expired."""
    process = ServerProcess(tmp_path_factory.mktemp("crm-server") / "data").start()
    yield process
    process.stop()


async def test_crm_sources_profiles_and_trait_sync_through_the_server(server: ServerProcess) -> None:
    source = server.create_source("crm-e2e-web")
    shop = Shop(server, source["write_key"])
    for n in (1, 4):
        shop.shop(n, "pro", 1)
    shop.send([{"type": "identify", "userId": shop.user(2), "traits": {"first_name": "Ben", "ns": shop.ns,
                "last_name": f"Fuzz{shop.ns}", "phone": "+44 7700 900123"}}])  # fmt: skip
    assert await eventually(lambda: profile(server, f"user_id:{shop.user(2)}"), 30)
    async with FakeHubSpotCrm(search_per_s=50) as hs, FakeSalesforceCrm() as sf, platforms() as fakes:
        ids = seed_crms(shop, hs, sf)
        hub_id, sf_id = await create_sources(server, hs, sf)
        await pull_hubspot_through_faults(server, hs, hub_id)
        assert (await pull(server, sf_id))["status"] == "succeeded"
        await check_unified_profiles(server, shop, ids)
        await merge_and_delete_in_the_crms(server, ids, (hs, sf), (hub_id, sf_id))
        await mixed_audience_everywhere(server, shop, ids, (hs, sf), fakes)


async def mixed_audience_everywhere(
    server: ServerProcess, shop: Shop, ids: dict[str, str], crms: tuple[FakeHubSpotCrm, FakeSalesforceCrm],
    fakes: Platforms,
) -> None:  # fmt: skip
    hs, sf = crms
    key = f"crm_buyers_{shop.ns}"
    traits_to = await trait_destinations(server, hs, sf, key)
    lists = await audience_destinations(server, fakes, shop.ns)
    query = (f"(trait('lifecycle_stage') = 'customer' or trait('title') = 'Buyer')"
             f" and event('Order Completed').count() >= 1 and trait('ns') = '{shop.ns}'")  # fmt: skip
    created = await admin(server, "POST", "/audiences", json={
        "name": key, "key": key, "query": query, "destinations": [*traits_to, *lists.values()]})  # fmt: skip
    assert created.status_code == 201, created.text
    audience_id = created.json()["id"]
    await run_audience(server, audience_id, expected_members=2)
    members = await people_of(server, shop, audience_id)
    assert sorted(p.user_id for p in members) == sorted(
        [shop.user(1), shop.user(4)]
    )  # Ann (HubSpot), Eve (SF)

    runs = await sync_all(server, [*traits_to, *lists.values()], audience_id)
    assert [r["status"] for r in runs[2:]] == ["succeeded"] * len(AUDIENCE_TYPES), runs[2:]
    for kind in AUDIENCE_TYPES:  # every platform holds exactly the computed members
        assert fakes.held(kind, key) == {fakes.identifier(kind, p) for p in members}, kind

    # The audience streams: a micro-batch (its profiles changed as the CRMs were pulled) may sync
    # its members before the manual trigger does, so the write-back is checked over every run of it.
    async def settled() -> list[list[dict[str, Any]]] | None:
        found = [await runs_of(server, d, audience_id) for d in traits_to]
        return None if any(r["status"] == "running" for runs in found for r in runs) else found

    trait_runs = await eventually(settled, 60)
    assert trait_runs is not None, "a trait sync did not finish"
    await check_trait_write_back(server, shop, ids, crms, trait_runs)
