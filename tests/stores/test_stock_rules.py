"""``shown``: the one function that says what a channel is shown of a SKU's stock."""

from __future__ import annotations

import pytest

from fusion.stores.stock_rules import (
    NO_RULES,
    InvalidRules,
    StockRules,
    channel_shown,
    shown,
)


def test_no_rules_show_the_raw_figure() -> None:
    assert [shown(n, NO_RULES) for n in (0, 1, 7, 1_000_000)] == [0, 1, 7, 1_000_000]


def test_a_negative_available_figure_is_shown_as_zero() -> None:
    assert shown(-3, NO_RULES) == 0
    assert shown(-3, StockRules(percent_shown=100, max_shown=5)) == 0


def test_a_buffer_holds_units_back_and_never_goes_below_zero() -> None:
    assert shown(10, StockRules(buffer=3)) == 7
    assert shown(3, StockRules(buffer=3)) == 0
    assert shown(2, StockRules(buffer=3)) == 0  # negative after the buffer: 0


def test_a_percentage_rounds_down_and_of_a_small_figure_is_zero() -> None:
    assert shown(9, StockRules(percent_shown=50)) == 4
    assert shown(1, StockRules(percent_shown=50)) == 0
    assert shown(1, StockRules(percent_shown=99)) == 0
    assert shown(7, StockRules(percent_shown=100)) == 7
    assert shown(7, StockRules(percent_shown=0)) == 0


def test_a_cap_limits_what_is_shown() -> None:
    assert shown(50, StockRules(max_shown=10)) == 10
    assert shown(4, StockRules(max_shown=10)) == 4
    assert shown(4, StockRules(max_shown=0)) == 0


def test_zero_below_looks_at_the_raw_figure_before_the_buffer() -> None:
    # 5 available: not below 5, so the buffer applies to the raw 5
    assert shown(5, StockRules(zero_below=5, buffer=2)) == 3
    # 4 available: below 5, 0 whatever the other rules
    assert shown(4, StockRules(zero_below=5)) == 0
    assert shown(4, StockRules(zero_below=5, buffer=0, percent_shown=100)) == 0


def test_the_rules_apply_in_order_zero_below_buffer_percent_cap() -> None:
    rules = StockRules(zero_below=3, buffer=2, percent_shown=50, max_shown=10)
    assert shown(2, rules) == 0  # below 3
    assert shown(3, rules) == 0  # (3 - 2) * 50% = 0.5 -> 0
    assert shown(13, rules) == 5  # (13 - 2) * 50% = 5.5 -> 5
    assert shown(100, rules) == 10  # 49, capped at 10


def test_a_listing_overrides_its_stores_rules_key_by_key() -> None:
    store = {"buffer": 5, "max_shown": 20}
    assert channel_shown(100, store, {"buffer": 1}) == 20  # cap kept, buffer overridden
    assert channel_shown(10, store, {"buffer": 1}) == 9
    assert channel_shown(10, store, {}) == 5
    assert channel_shown(10, store, {"buffer": 0}) == 10  # 0 is a rule, not "unset"
    assert channel_shown(10, {}, None) == 10


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"buffer": -1}, "buffer"),
        ({"percent_shown": 101}, "percent_shown"),
        ({"max_shown": 2.5}, "max_shown"),
        ({"zero_below": True}, "zero_below"),
        ({"safety": 3}, "safety"),
    ],
)
def test_invalid_rules_are_refused_naming_the_key(raw: dict, key: str) -> None:
    with pytest.raises(InvalidRules) as refused:
        StockRules.parse(raw)
    assert refused.value.key == key
