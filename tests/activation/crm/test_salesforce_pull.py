"""Salesforce pulls through the job against the fake org: Bulk API 2.0 first load, SOQL increments
paged by nextRecordsUrl (and an expired locator), MasterRecordId merges, getDeleted deletions, the
org's API allowance, session expiry and refresh-token rotation."""

from __future__ import annotations

from typing import Any

from activation.crm.sources import CrmSourceSettings
from tests.activation.crm.conftest import ALLOW, OAUTH, SECRET_KEY, Crm
from tests.fakes.salesforce_crm import FakeSalesforceCrm


def config(fake: FakeSalesforceCrm, **extra: Any) -> dict[str, Any]:
    return {
        "instance_url": fake.base_url,
        "login_url": fake.base_url,
        "overlap_s": 0,
        "bulk_poll_ms": 10,
        **extra,
    }


def rest_queries(fake: FakeSalesforceCrm) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/query") and "/jobs/" not in r.path]


def seed(fake: FakeSalesforceCrm, crm: Crm) -> dict[str, str]:
    acme = fake.put("Account", Name="Acme", Website="acme.test", Phone=crm.phone)
    ids = {
        "acme": acme,
        "ann": fake.put(
            "Contact", FirstName="Ann", LastName=f"Lee{crm.uid}", Email=crm.email("ann"), AccountId=acme
        ),
        "bob": fake.put("Contact", FirstName="Bob", LastName=f"Ray{crm.uid}", Email=crm.email("bob")),
        "lead": fake.put(
            "Lead", FirstName="Lia", LastName=f"Ng{crm.uid}", Email=crm.email("lia"), Company="Lia Co"
        ),
    }
    ids["opp"] = fake.put("Opportunity", Name="Deal", Amount=500.0, StageName="Closed Won", IsClosed=True, IsWon=True,
                          AccountId=acme)  # fmt: skip
    return ids


async def test_first_load_by_bulk_then_soql_increments(crm: Crm, salesforce: FakeSalesforceCrm) -> None:
    ids = seed(salesforce, crm)
    source = await crm.source("salesforce", config(salesforce), OAUTH)
    first = await crm.pull(source)
    assert first["status"] == "succeeded" and first["created"] == 5
    assert len(salesforce.requests_to("/jobs/query")) >= 4 * 3  # one job per object: create, poll, results
    assert not rest_queries(salesforce)  # no REST query on a first load
    ann = crm.traits("email", crm.email("ann"))
    assert ann["last_name"] == f"Lee{crm.uid}" and ann["groups"] == [
        f"ext:salesforce_account_id:{ids['acme']}"
    ]
    acme = crm.traits("ext:salesforce_account_id", ids["acme"])
    assert acme["profile_kind"] == "group" and acme["salesforce_deal_amount_won"] == 500
    assert crm.traits("ext:salesforce_lead_id", ids["lead"])["company"] == "Lia Co"
    salesforce.update("Contact", ids["bob"], Title="CFO")
    second = await crm.pull(source)
    # SystemModstamp >= watermark: Bob (changed) plus records stamped at each object's watermark
    assert second["created"] == 0 and second["updated"] == second["fetched"] >= 1
    assert crm.traits("email", crm.email("bob"))["title"] == "CFO"
    assert rest_queries(salesforce)


async def test_pages_follow_next_records_url_and_survive_an_expired_locator(crm: Crm) -> None:
    async with FakeSalesforceCrm() as fake:
        source = await crm.source("salesforce", config(fake, objects=["Contact"], page_size=200), OAUTH)
        await crm.pull(source)  # empty first load
        for n in range(450):
            fake.put("Contact", LastName=f"P{n}{crm.uid}", Email=crm.email(f"p{n}"))
        fake.inject("error500", times=4, path="/v61.0/query/")  # the second page fails for good...
        failed = await crm.pull(source)
        assert failed["status"] == "failed" and failed["created"] == 200
        fake.expire_locators()  # ...and its locator is gone by the next run
        resumed = await crm.pull(source)
        assert resumed["status"] == "succeeded"
        rows = crm.ch.query(
            "SELECT count() FROM identity_records FINAL WHERE batch_id = {s:String} AND deleted = 0",
            parameters={"s": source},
        ).result_rows
        assert rows[0][0] == 450
        assert "query locator expired" in (await crm.runs(source))[0]["messages"]


async def test_merges_and_deletions(crm: Crm, salesforce: FakeSalesforceCrm) -> None:
    ids = seed(salesforce, crm)
    source = await crm.source("salesforce", config(salesforce), OAUTH)
    await crm.pull(source)
    salesforce.merge("Contact", ids["ann"], ids["bob"])
    salesforce.delete("Lead", ids["lead"])
    result = await crm.pull(source)
    assert (result["merged"], result["deleted"]) == (1, 1)
    ann = crm.profile("ext:salesforce_contact_id", ids["ann"])
    assert ann is not None and crm.profile("email", crm.email("bob")) == ann
    assert crm.profile("email", crm.email("lia")) is None


async def test_org_allowance_stops_the_run_and_resumes(crm: Crm, salesforce: FakeSalesforceCrm) -> None:
    seed(salesforce, crm)
    source = await crm.source("salesforce", config(salesforce, max_api_usage_pct=100), OAUTH)
    salesforce.inject("throttle", times=None, path="/jobs/query")  # 403 REQUEST_LIMIT_EXCEEDED
    stopped = await crm.pull(source)
    assert (
        stopped["status"] == "throttled" and len(salesforce.requests_to("/jobs/query")) == 1
    )  # no retry storm
    assert "REQUEST_LIMIT_EXCEEDED" in (await crm.runs(source))[0]["messages"][0]
    salesforce.faults.clear()
    salesforce.api_limit, salesforce.api_used = 1000, 0
    budget = await crm.source("salesforce", config(salesforce, max_api_usage_pct=1), OAUTH)
    assert (await crm.pull(budget))["status"] == "throttled"  # Sforce-Limit-Info past 1% of the allowance
    assert "API usage" in (await crm.runs(budget))[0]["messages"][0]
    assert (await crm.pull(source))["status"] == "succeeded"


async def test_session_expiry_refreshes_once_and_keeps_a_rotated_refresh_token(
    crm: Crm, salesforce: FakeSalesforceCrm
) -> None:
    seed(salesforce, crm)
    salesforce.rotate_refresh = True
    source = await crm.source("salesforce", config(salesforce, objects=["Contact"]), OAUTH)
    assert (await crm.pull(source))["status"] == "succeeded"  # no access token yet: refreshed first
    salesforce.inject("auth_expired")
    assert (await crm.pull(source))["status"] == "succeeded"
    assert salesforce.refresh_calls == 2
    settings = CrmSourceSettings(crm.services.db, SECRET_KEY, ALLOW)
    stored = await settings.get(source)
    assert stored is not None and settings.credentials(stored)["refresh_token"] in salesforce.refresh_tokens
