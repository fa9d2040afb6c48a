"""CRM records as pulled, and how each becomes an identity record (pure).

A person (HubSpot contact, Salesforce Contact or Lead) links directly through its hard identifiers:
email, phone and the CRM record id as an external id (`ext:hubspot_contact_id`, ...); the rest of its
fields are traits. A company (HubSpot company, Salesforce Account) becomes a *group* profile of its
own, reached through its external id (`ext:hubspot_company_id:<id>`); its email/phone-like fields are
kept as traits only, so a company never merges with a person. People carry a `groups` trait listing
their companies' identifiers (Profile API paths). Deals and opportunities are summarised per person
and company (`<platform>_deal_count`, `_deal_amount_open`, `_deal_amount_won`, `_deal_stages`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from activation.identity.records import ImportRecord, record_from_row

PERSON, GROUP, DEAL = "person", "group", "deal"


@dataclass(frozen=True)
class ObjectSpec:
    """One pulled CRM object: its kind, its external-id type and its field → trait names."""

    name: str
    kind: str
    id_type: str
    fields: Mapping[str, str]
    email: str = ""
    phones: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrmRecord:
    """One CRM record as read: platform fields, modification time (epoch ms), the group ids it belongs
    to, the person/company external ids it is associated with (deals), ids merged into it."""

    object: str
    id: str
    properties: Mapping[str, Any]
    modified_ms: int
    groups: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    merged_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def record_id(source_id: str, obj: str, crm_id: str) -> str:
    return f"{source_id}:{obj}:{crm_id}"


def external(spec: ObjectSpec, crm_id: str) -> str:
    """The Profile API form of a record's external id: `ext:hubspot_contact_id:123`."""
    return f"ext:{spec.id_type}:{crm_id}"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _traits(spec: ObjectSpec, props: Mapping[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for name, trait in spec.fields.items():
        value = props.get(name)
        if value not in (None, ""):
            traits[trait] = value
    return traits


def to_import(
    source_id: str, platform: str, spec: ObjectSpec, record: CrmRecord, region: str = ""
) -> ImportRecord | None:
    """The identity record of a person or a company (None for deals: see `deal_summaries`)."""
    if spec.kind == DEAL:
        return None
    traits = {**_traits(spec, record.properties), "crm": platform, f"{platform}_object": spec.name}
    row: dict[str, Any] = {
        "record_id": record_id(source_id, spec.name, record.id),
        f"ext:{spec.id_type}": record.id,
    }
    if spec.kind == PERSON:
        email = _text(record.properties.get(spec.email)) if spec.email else ""
        phone = next((_text(record.properties.get(p)) for p in spec.phones if record.properties.get(p)), "")
        row.update({k: v for k, v in (("email", email), ("phone", phone)) if v})
        if record.groups:
            traits["groups"] = sorted(record.groups)
    else:
        traits["profile_kind"] = "group"
    row["traits"] = traits
    return record_from_row(row, region)


def deal_summaries(
    platform: str,
    deals_by_target: Mapping[str, Sequence[Mapping[str, Any]]],
    source_id: str,
    region: str = "",
) -> list[ImportRecord]:
    """One summary record per person/company label (`ext:type:id`) from its live deals' properties
    (`amount`, `stage`, `closed`, `won`, already normalised by the platform module)."""
    records = []
    for target, deals in sorted(deals_by_target.items()):
        type_, _, crm_id = target.removeprefix("ext:").partition(":")
        amounts = [(_number(d.get("amount")), bool(d.get("closed")), bool(d.get("won"))) for d in deals]
        traits = {
            f"{platform}_deal_count": len(deals),
            f"{platform}_deal_amount_open": sum(a for a, closed, _ in amounts if not closed),
            f"{platform}_deal_amount_won": sum(a for a, _, won in amounts if won),
            f"{platform}_deal_stages": sorted({_text(d.get("stage")) for d in deals if d.get("stage")}),
        }
        row = {"record_id": f"{source_id}:deals:{target}", f"ext:{type_}": crm_id, "traits": traits}
        built = record_from_row(row, region)
        if built is not None:
            records.append(built)
    return records


def _number(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0
