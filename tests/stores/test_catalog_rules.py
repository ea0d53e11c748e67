"""``channel_price``: the one function that says what a SKU sells at on a channel, and the
parsing of a store's catalog rules (price rule, category and attribute mappings)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fusion.errors import ValidationFailed
from fusion.stores.catalog_rules import (
    MAX_PRICE,
    CatalogRules,
    InvalidCatalogRules,
    PriceRule,
    Rounding,
    channel_price,
    checked,
    round_price,
)

D = Decimal


def price(value: str, **rule: object) -> Decimal:
    return channel_price("SKU-1", D(value), PriceRule.parse(rule))


def test_no_rule_sells_at_the_hub_price_in_cents() -> None:
    assert price("12.50") == D("12.50")
    assert str(price("12")) == "12.00"
    assert price("0") == D("0.00")


def test_a_markup_is_a_percentage_of_the_hub_price_rounded_to_the_cent_half_up() -> None:
    assert price("10.00", markup_percent=25) == D("12.50")
    assert price("10.01", markup_percent="12.5") == D("11.26")  # 11.26125
    assert price("0.10", markup_percent=5) == D("0.11")  # 0.105: half up
    assert price("19.99", markup_percent="-10") == D("17.99")  # 17.991


def test_a_markdown_of_100_percent_is_free_and_never_below_zero() -> None:
    assert price("10.00", markup_percent=-100) == D("0.00")


@pytest.mark.parametrize(
    ("hub", "expected"),
    [
        ("10.00", "10.99"),
        ("10.98", "10.99"),
        ("10.99", "10.99"),  # already .99: stays
        ("10.991", "10.99"),  # rounds to the cent first
        ("10.995", "11.99"),
        ("11.00", "11.99"),
        ("0.50", "0.99"),
        ("0.99", "0.99"),
    ],
)
def test_up_to_99_goes_up_to_the_next_price_ending_in_99(hub: str, expected: str) -> None:
    assert price(hub, rounding="up_to_99") == D(expected)


@pytest.mark.parametrize(
    ("hub", "expected"),
    [("10.00", "10.00"), ("10.001", "11.00"), ("10.01", "11.00"), ("0.01", "1.00")],
)
def test_up_to_whole_goes_up_to_the_next_whole_amount(hub: str, expected: str) -> None:
    assert price(hub, rounding="up_to_whole") == D(expected)


def test_rounding_applies_after_the_markup() -> None:
    # 20.00 * 1.15 = 23.00 -> 23.99; 23.00 -> 23.00 whole.
    assert price("20.00", markup_percent=15, rounding="up_to_99") == D("23.99")
    assert price("20.00", markup_percent=15, rounding="up_to_whole") == D("23.00")
    assert price("20.00", markup_percent="15.1", rounding="up_to_whole") == D("24.00")


def test_an_override_is_the_price_as_it_is_neither_marked_up_nor_rounded() -> None:
    rule = PriceRule.parse(
        {"markup_percent": 50, "rounding": "up_to_99", "overrides": {"SKU-1": "7.25"}}
    )
    assert channel_price("SKU-1", D("100"), rule) == D("7.25")
    assert channel_price("SKU-2", D("10"), rule) == D("15.99")  # the others: the rule


def test_a_marked_up_price_never_exceeds_what_the_hub_holds() -> None:
    assert price(str(MAX_PRICE), markup_percent=10_000) == MAX_PRICE


def test_round_price_of_zero_or_less_is_zero() -> None:
    for rounding in Rounding:
        assert round_price(D("0"), rounding) == D("0.00")
        assert round_price(D("-3"), rounding) == D("0.00")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"colour": {}}, "colour"),
        ({"pricing": {"markup": 3}}, "pricing.markup"),
        ({"pricing": {"markup_percent": "lots"}}, "pricing.markup_percent"),
        ({"pricing": {"markup_percent": True}}, "pricing.markup_percent"),
        ({"pricing": {"markup_percent": -101}}, "pricing.markup_percent"),
        ({"pricing": {"rounding": "to_nearest_5"}}, "pricing.rounding"),
        ({"pricing": {"overrides": {"S": "1.234"}}}, "pricing.overrides.S"),
        ({"pricing": {"overrides": {"S": -1}}}, "pricing.overrides.S"),
        ({"pricing": {"overrides": []}}, "pricing.overrides"),
        ({"categories": {"mugs": ""}}, "categories.mugs"),
        ({"categories": {"mugs": 1.5}}, "categories.mugs"),
        ({"categories": ["mugs"]}, "categories"),
        ({"attributes": {"size": None}}, "attributes.size"),
    ],
)
def test_bad_rules_are_refused_naming_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidCatalogRules) as caught:
        CatalogRules.parse(raw)
    assert caught.value.key == key
    with pytest.raises(ValidationFailed) as failed:
        checked(raw)
    assert list(failed.value.fields) == [f"catalog_rules.{key}"]


def test_a_category_maps_by_its_own_entry_else_by_star_else_to_none() -> None:
    rules = CatalogRules.parse({"categories": {"mugs": "1106", "*": "1"}})
    assert rules.category("mugs") == "1106"
    assert rules.category("shirts") == "1"
    assert rules.category("") == "1"
    assert CatalogRules.parse({"categories": {"mugs": 1106}}).category("shirts") is None
    assert CatalogRules.parse({"categories": {"mugs": 1106}}).category("mugs") == "1106"


def test_only_mapped_attributes_reach_the_platform_under_its_names() -> None:
    rules = CatalogRules.parse({"attributes": {"size": "Size", "colour": "color_name"}})
    assert rules.options({"size": "M", "colour": "red", "fabric": "cotton"}) == {
        "Size": "M",
        "color_name": "red",
    }
    assert rules.options({"size": ""}) == {}


def test_stored_rules_are_written_out_whole() -> None:
    assert checked({"pricing": {"markup_percent": 10}}) == {
        "pricing": {"markup_percent": "10", "rounding": "cents", "overrides": {}},
        "categories": {},
        "attributes": {},
    }
