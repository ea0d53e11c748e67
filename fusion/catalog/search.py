"""The org-wide SKU search: variants by SKU prefix or by text, each with its product."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from fusion.catalog.models import Product, ProductVariant


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matching(*, sku: str | None, q: str | None) -> list[ColumnElement[bool]]:
    """Conditions on ``product_variants``: the SKU starts with ``sku``, and ``q`` is found
    (case-insensitive, anywhere) in the SKU, the variant's title or barcode, or its
    product's title. None ignores a term; both None match every variant."""
    found: list[ColumnElement[bool]] = []
    if sku is not None:
        found.append(ProductVariant.sku.ilike(f"{_escaped(sku)}%", escape="\\"))
    if q is not None:
        pattern = f"%{_escaped(q)}%"
        titled = exists().where(
            Product.id == ProductVariant.product_id, Product.title.ilike(pattern, escape="\\")
        )
        found.append(
            or_(
                ProductVariant.sku.ilike(pattern, escape="\\"),
                ProductVariant.title.ilike(pattern, escape="\\"),
                ProductVariant.barcode.ilike(pattern, escape="\\"),
                titled,
            )
        )
    return found


@dataclass(frozen=True)
class VariantHit:
    """One variant found, with its product and its stock (the hub's available figure)."""

    variant: ProductVariant
    product: Product

    @property
    def stock(self) -> dict[str, int]:
        return {
            "available_quantity": self.variant.available_quantity,
            "stock_version": self.variant.stock_version,
        }


def with_products(session: Session, variants: Sequence[ProductVariant]) -> list[VariantHit]:
    """``variants`` each with its product (one query for all of them)."""
    ids: set[uuid.UUID] = {v.product_id for v in variants}
    products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    return [VariantHit(variant=v, product=products[v.product_id]) for v in variants]
