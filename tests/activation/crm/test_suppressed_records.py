"""A deleted-and-suppressed person stays out of Magpie when a CRM pull reads them again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from activation.crm.hubspot import OBJECTS as HS
from activation.crm.ingest import Target, apply_page
from activation.crm.pages import Page
from activation.crm.records import CrmRecord
from activation.identity.identifiers import Identifier
from activation.privacy.suppressions import identifier_hash

SECRET = "crm-suppression-secret-0123456789abcdef"


def _live(ch: Client, record_id: str) -> bool:
    sql = "SELECT count() FROM identity_records FINAL WHERE record_id = {r:String} AND deleted = 0"
    return bool(ch.query(sql, parameters={"r": record_id}).result_rows[0][0])


def test_a_crm_record_carrying_a_suppressed_identifier_is_not_imported(ch: Client) -> None:
    tag = uuid.uuid4().hex[:8]
    source = f"src_crm_{tag}"
    gone, kept = f"gone.{tag}@example.com", f"kept.{tag}@example.com"
    now = datetime.now(UTC)
    digest = identifier_hash(SECRET, Identifier("email", gone))
    ch.insert(
        "suppressions",
        [[digest, "email", "del_test", 0, now, 1]],
        column_names=["hash", "identifier_type", "request_id", "deleted", "created_at", "version"],
    )
    page = Page(
        cursor={},
        records=(
            CrmRecord("contacts", f"1{tag}", {"email": gone.upper(), "firstname": "Gone"}, 1),
            CrmRecord("contacts", f"2{tag}", {"email": kept, "firstname": "Kept"}, 1),
        ),
    )
    counts = apply_page(ch, Target(source, "hubspot", HS["contacts"], "", SECRET), page, now)
    assert counts["created"] == 1
    assert not _live(ch, f"{source}:contacts:1{tag}") and _live(ch, f"{source}:contacts:2{tag}")
