"""What a channel is shown of a SKU's stock: one pure function over the store's rules,
overridden key by key by the listing's.

The rules apply in this order, each to what the previous one left:

1. ``zero_below``: when the raw available figure is below N the channel is shown 0 (it
   looks at the hub's real stock, so the threshold means the same whatever the buffer);
2. ``buffer``: N units are held back;
3. ``percent_shown``: that percentage of what is left, rounded down;
4. ``max_shown``: at most N.

A negative figure at any step is shown as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

RULE_KEYS = ("buffer", "max_shown", "percent_shown", "zero_below")
MAX_RULE = 2**31 - 1


class InvalidRules(ValueError):
    """Stock rules that are not a mapping of the known keys to integers in range."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class StockRules:
    """A channel's rules; None is "no rule" (and lets a store's rule through a listing)."""

    buffer: int | None = None
    max_shown: int | None = None
    percent_shown: int | None = None
    zero_below: int | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> StockRules:
        """The rules of a stored ``stock_rules`` object. Raises InvalidRules naming the key
        for an unknown key or a value that is not an integer in range (0 up; percent_shown
        at most 100)."""
        values: dict[str, int | None] = {}
        for key, value in (raw or {}).items():
            if key not in RULE_KEYS:
                raise InvalidRules(key, "unknown rule")
            if value is None:
                values[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRules(key, "must be an integer")
            top = 100 if key == "percent_shown" else MAX_RULE
            if not 0 <= value <= top:
                raise InvalidRules(key, f"must be between 0 and {top}")
            values[key] = value
        return cls(**values)

    def over(self, base: StockRules) -> StockRules:
        """These rules, each unset one taken from ``base`` (a listing's over its store's)."""
        return replace(
            base,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )

    def as_dict(self) -> dict[str, int]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


NO_RULES = StockRules()


def shown(available: int, rules: StockRules) -> int:
    """The figure a channel with ``rules`` shows when the hub holds ``available`` (see the
    module for the order); never negative. No rules: the raw figure (0 if negative)."""
    if available <= 0:
        return 0
    if rules.zero_below is not None and available < rules.zero_below:
        return 0
    figure = available - (rules.buffer or 0)
    if figure <= 0:
        return 0
    if rules.percent_shown is not None:
        figure = figure * rules.percent_shown // 100
    if rules.max_shown is not None:
        figure = min(figure, rules.max_shown)
    return max(figure, 0)


def channel_shown(
    available: int, store_rules: Mapping[str, Any] | None, listing_rules: Mapping[str, Any] | None
) -> int:
    """:func:`shown` under a store's stored rules, overridden key by key by its listing's."""
    return shown(available, StockRules.parse(listing_rules).over(StockRules.parse(store_rules)))
