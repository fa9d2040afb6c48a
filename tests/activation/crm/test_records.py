"""Mapping CRM records to identity records (pure): hard identifiers, traits, groups, deal summaries."""

from __future__ import annotations

from activation.crm.hubspot import OBJECTS as HS
from activation.crm.hubspot_pull import deal_fields, search_body
from activation.crm.pages import iso_of, ms_of
from activation.crm.records import CrmRecord, deal_summaries, to_import
from activation.crm.salesforce import OBJECTS as SF
from activation.crm.salesforce_pull import changes_soql, merges_soql, to_record
from activation.identity.identifiers import Identifier


def test_hubspot_contact_links_by_email_phone_and_record_id() -> None:
    record = CrmRecord("contacts", "42", {"email": " Ann@Example.COM ", "firstname": "Ann", "phone": "+44 7700 900123",
                                          "lifecyclestage": "lead"}, 1, groups=("ext:hubspot_company_id:7",))  # fmt: skip
    built = to_import("src_1", "hubspot", HS["contacts"], record)
    assert built is not None and built.record_id == "src_1:contacts:42"
    assert set(built.hard_ids) == {
        Identifier("email", "ann@example.com"),
        Identifier("phone", "+447700900123"),
        Identifier("ext:hubspot_contact_id", "42"),
    }
    assert built.traits["first_name"] == "Ann" and built.traits["lifecycle_stage"] == "lead"
    assert built.traits["groups"] == ["ext:hubspot_company_id:7"] and built.traits["crm"] == "hubspot"


def test_company_is_a_group_whose_phone_is_never_an_identifier() -> None:
    record = CrmRecord("companies", "7", {"name": "Acme", "phone": "+14155550100", "domain": "acme.test"}, 1)
    built = to_import("src_1", "hubspot", HS["companies"], record)
    assert built is not None and {i.type for i in built.hard_ids} == {"ext:hubspot_company_id"}
    assert built.traits == {"group_name": "Acme", "group_phone": "+14155550100", "domain": "acme.test",
                            "crm": "hubspot", "hubspot_object": "companies", "profile_kind": "group"}  # fmt: skip
    assert to_import("src_1", "hubspot", HS["deals"], CrmRecord("deals", "1", {}, 1)) is None


def test_salesforce_rows_and_soql() -> None:
    row = {"attributes": {"type": "Contact"}, "Id": "003A", "Email": "e@x.io", "AccountId": "001B",
           "SystemModstamp": "2026-01-01T00:00:00.000+0000", "LastName": "Eve", "Phone": None}  # fmt: skip
    record = to_record(SF["Contact"], row)
    assert record.modified_ms == ms_of("2026-01-01T00:00:00Z") and record.groups == (
        "ext:salesforce_account_id:001B",
    )
    assert "Phone" not in record.properties
    built = to_import("s", "salesforce", SF["Contact"], record)
    assert built is not None and Identifier("ext:salesforce_contact_id", "003A") in built.hard_ids
    soql = changes_soql(SF["Lead"], 0, ms_of("2026-01-01T00:00:00Z"))
    assert (
        soql.startswith("SELECT Id, SystemModstamp, FirstName")
        and " FROM Lead WHERE SystemModstamp >= " in soql
    )
    assert soql.endswith("SystemModstamp <= 2026-01-01T00:00:00.000Z ORDER BY SystemModstamp ASC, Id ASC")
    assert "IsDeleted = true AND MasterRecordId != null" in merges_soql(SF["Account"], 0)
    assert iso_of(1767225600123) == "2026-01-01T00:00:00.123Z"


def test_search_body_respects_hubspot_filter_limits_and_sorts_by_modification() -> None:
    body = search_body(HS["companies"], 10, 20, "300", 100)
    filters = body["filterGroups"][0]["filters"]
    assert [f["operator"] for f in filters] == ["GTE", "LTE"] and filters[0][
        "propertyName"
    ] == "hs_lastmodifieddate"
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert body["after"] == "300" and "hs_merged_object_ids" in body["properties"]
    assert "after" not in search_body(HS["contacts"], 0, 1, None, 100)


def test_deal_summaries_per_person_and_company() -> None:
    deals = [deal_fields({"amount": "100", "dealstage": "closedwon"}),
             deal_fields({"amount": "50", "dealstage": "appointmentscheduled"})]  # fmt: skip
    summaries = deal_summaries(
        "hubspot", {"ext:hubspot_contact_id:1": deals, "ext:hubspot_company_id:2": []}, "s"
    )
    by_id = {r.record_id: r for r in summaries}
    ann = by_id["s:deals:ext:hubspot_contact_id:1"]
    assert ann.traits == {"hubspot_deal_count": 2, "hubspot_deal_amount_open": 50.0, "hubspot_deal_amount_won": 100.0,
                          "hubspot_deal_stages": ["appointmentscheduled", "closedwon"]}  # fmt: skip
    assert (
        by_id["s:deals:ext:hubspot_company_id:2"].traits["hubspot_deal_count"] == 0
    )  # last deal gone: cleared
