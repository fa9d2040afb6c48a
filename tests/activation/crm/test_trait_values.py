"""Trait sync values (pure): mapping sources, the diff against confirmed values, CRM-owned fields."""

from __future__ import annotations

from activation.crm.trait_values import changed, desired
from activation.destinations.trait_mapping import read_mapping


def test_desired_values_from_traits_computed_and_audiences() -> None:
    mapping = {"plan": "plan", "computed:orders": "orders", "lifetime_revenue": "ltv", "audience:vip": "vip",
               "audience:gone": "gone", "missing": "missing"}  # fmt: skip
    values = desired(mapping, {"plan": "pro"}, {"orders": 3.0, "lifetime_revenue": 9.5}, {"vip"})
    assert values == {"plan": "pro", "orders": 3.0, "ltv": 9.5, "vip": True, "gone": False, "missing": None}


def test_only_changed_values_are_sent_and_a_vanished_value_is_cleared_once() -> None:
    assert changed({"plan": "pro", "vip": True, "x": None}, {"plan": '"pro"', "vip": "false"}) == {
        "vip": True
    }
    assert changed({"plan": None}, {"plan": '"pro"'}) == {"plan": None}
    assert changed({"plan": None}, {"plan": "null"}) == {}


def test_crm_owned_fields_are_never_writable_and_bad_mappings_are_refused() -> None:
    config = {"mapping": {"plan": "plan", "stage": "lifecyclestage"}, "crm_owned": ["lifecyclestage"]}
    parsed, errors = read_mapping(config, r"[a-z_]+")
    assert errors == {} and parsed.writable() == {"plan": "plan"}
    assert "mapping" in read_mapping({"mapping": {}}, r"[a-z]+")[1]
    assert "mapping" in read_mapping({"mapping": {"a": "Bad Field"}}, r"[a-z]+")[1]
    assert "mapping" in read_mapping({"mapping": {"a": "f", "b": "f"}}, r"[a-z]+")[1]
    assert "crm_owned" in read_mapping({"mapping": {"a": "f"}, "crm_owned": "f"}, r"[a-z]+")[1]
