"""What a store's channel gets of a product besides its stock: the price each SKU sells at
there, and the platform's names for the hub's category and variant attributes.

A store's ``catalog_rules`` (one JSON object, set through the API) holds:

- ``pricing``: ``markup_percent`` (a decimal, -100 up: 25 sells a 10.00 SKU at 12.50),
  ``rounding`` (how the marked-up price is rounded, :class:`Rounding`) and ``overrides``
  (SKU -> the exact price on this channel: neither marked up nor rounded);
- ``categories``: the hub's category key -> the platform's category (Shopify's product type,
  Etsy's ``taxonomy_id``, Amazon's product type), ``"*"`` for every category not named;
- ``attributes``: the hub's variant attribute name -> the platform's attribute (option)
  name; a variant attribute not named does not reach the platform.

:func:`channel_price` is the one price function; :meth:`CatalogRules.parse` checks stored or
given rules and names the bad key.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from fusion.errors import ValidationFailed

ANY_CATEGORY = "*"
MAX_PRICE = Decimal("9999999999.99")  # what Numeric(12, 2) holds
CENT = Decimal("0.01")
MAX_NAME = 200
MAX_ENTRIES = 500


class Rounding(enum.StrEnum):
    """How a marked-up price is rounded."""

    CENTS = "cents"  # to the nearest cent, half up (the default)
    UP_TO_99 = "up_to_99"  # up to the next price ending in .99 (10.00 -> 10.99, 10.99 stays)
    UP_TO_WHOLE = "up_to_whole"  # up to the next whole amount (10.01 -> 11.00)


class InvalidCatalogRules(ValueError):
    """Catalog rules with an unknown key or a bad value; ``key`` names it (dotted)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _decimal(key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InvalidCatalogRules(key, "must be a number or a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidCatalogRules(key, "must be a number or a decimal string") from None
    if not number.is_finite():
        raise InvalidCatalogRules(key, "must be a finite number")
    return number


def _names(key: str, raw: Any, *, values: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise InvalidCatalogRules(key, "must be an object")
    if len(raw) > MAX_ENTRIES:
        raise InvalidCatalogRules(key, f"at most {MAX_ENTRIES} entries")
    names: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise InvalidCatalogRules(key, f"names must be 1 to {MAX_NAME} characters")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidCatalogRules(f"{key}.{name}", f"must be {values}")
        text = str(value)
        if not text or len(text) > MAX_NAME:
            raise InvalidCatalogRules(f"{key}.{name}", f"must be {values}, 1 to {MAX_NAME} long")
        names[name] = text
    return names


@dataclass(frozen=True)
class PriceRule:
    markup_percent: Decimal = Decimal(0)
    rounding: Rounding = Rounding.CENTS
    overrides: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> PriceRule:
        """The rule of a ``pricing`` object; raises InvalidCatalogRules naming the key."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidCatalogRules("pricing", "must be an object")
        unknown = sorted(set(raw) - {"markup_percent", "rounding", "overrides"})
        if unknown:
            raise InvalidCatalogRules(f"pricing.{unknown[0]}", "unknown key")
        markup = _decimal("pricing.markup_percent", raw.get("markup_percent", 0))
        if not Decimal(-100) <= markup <= Decimal(10_000):
            raise InvalidCatalogRules("pricing.markup_percent", "must be between -100 and 10000")
        try:
            rounding = Rounding(raw.get("rounding", Rounding.CENTS.value))
        except ValueError:
            choices = ", ".join(r.value for r in Rounding)
            raise InvalidCatalogRules("pricing.rounding", f"must be one of {choices}") from None
        overrides_raw = raw.get("overrides", {})
        if not isinstance(overrides_raw, Mapping):
            raise InvalidCatalogRules("pricing.overrides", "must be an object of SKU -> price")
        overrides: dict[str, Decimal] = {}
        for sku, value in overrides_raw.items():
            key = f"pricing.overrides.{sku}"
            price = _decimal(key, value)
            if price < 0 or price > MAX_PRICE or price != price.quantize(CENT):
                raise InvalidCatalogRules(key, "must be 0 up, with at most two decimals")
            overrides[str(sku)] = price
        return cls(markup, rounding, overrides)

    def as_dict(self) -> dict[str, Any]:
        return {
            "markup_percent": str(self.markup_percent),
            "rounding": self.rounding.value,
            "overrides": {sku: str(price) for sku, price in sorted(self.overrides.items())},
        }


def round_price(price: Decimal, rounding: Rounding) -> Decimal:
    """``price`` rounded the way ``rounding`` says (never below 0)."""
    if price <= 0:
        return Decimal("0.00")
    cents = price.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounding is Rounding.UP_TO_WHOLE:
        return price.quantize(Decimal(1), rounding=ROUND_CEILING).quantize(CENT)
    if rounding is Rounding.UP_TO_99:
        # The first x.99 at or above the price in cents: 10.00 -> 10.99, 10.995 -> 11.99.
        whole = (cents - Decimal("0.99")).quantize(Decimal(1), rounding=ROUND_CEILING)
        return (max(whole, Decimal(0)) + Decimal("0.99")).quantize(CENT)
    return cents


def channel_price(sku: str, price: Decimal, rule: PriceRule) -> Decimal:
    """What ``sku``, priced ``price`` in the hub, sells at on a channel with ``rule``: its
    override there as it is, else the price marked up by ``markup_percent`` and rounded; two
    decimals, never negative, never above what the hub can hold."""
    if sku in rule.overrides:
        return rule.overrides[sku].quantize(CENT)
    marked = price * (Decimal(100) + rule.markup_percent) / Decimal(100)
    return min(round_price(marked, rule.rounding), MAX_PRICE)


@dataclass(frozen=True)
class CatalogRules:
    """A store's catalog rules (see the module)."""

    pricing: PriceRule = field(default_factory=PriceRule)
    categories: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> CatalogRules:
        """The rules of a stored or given ``catalog_rules`` object. Raises
        InvalidCatalogRules naming the key (``pricing.rounding``, ``categories.mugs``, ...)
        for an unknown key or a bad value."""
        raw = raw or {}
        unknown = sorted(set(raw) - {"pricing", "categories", "attributes"})
        if unknown:
            raise InvalidCatalogRules(unknown[0], "unknown key")
        return cls(
            pricing=PriceRule.parse(raw.get("pricing")),
            categories=_names(
                "categories", raw.get("categories", {}), values="the platform's category"
            ),
            attributes=_names(
                "attributes", raw.get("attributes", {}), values="the platform's attribute name"
            ),
        )

    def category(self, hub_category: str) -> str | None:
        """The platform's category for ``hub_category`` (``"*"``'s when it has none of its
        own), or None when the store maps neither."""
        if hub_category and hub_category in self.categories:
            return self.categories[hub_category]
        return self.categories.get(ANY_CATEGORY)

    def options(self, attributes: Mapping[str, Any]) -> dict[str, str]:
        """A variant's attributes the store maps, under the platform's names (their values
        as text); the others are left out."""
        return {
            self.attributes[name]: str(value)
            for name, value in sorted(attributes.items())
            if name in self.attributes and value is not None and str(value) != ""
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "pricing": self.pricing.as_dict(),
            "categories": dict(sorted(self.categories.items())),
            "attributes": dict(sorted(self.attributes.items())),
        }


def checked(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """``raw`` as stored catalog rules (every part written out). Raises ValidationFailed
    naming the key as ``catalog_rules.<key>``."""
    try:
        return CatalogRules.parse(raw).as_dict()
    except InvalidCatalogRules as exc:
        raise ValidationFailed(fields={f"catalog_rules.{exc.key}": [str(exc)]}) from None
