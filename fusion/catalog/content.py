"""What a listing action pushes, as a draft for the platform and as the content an approval of
it binds (``fusion.approvals.binding``).

The approval's snapshot and the job's check are built by the same functions from the same
draft the job pushes, so "what was approved" and "what is pushed" cannot drift apart. Stock
is left out of the snapshot: it moves with every sale and reaches the platforms through the
inventory pushes, not through this approval.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.catalog.models import Listing, Product, ProductImage, ProductVariant
from fusion.errors import PermanentError
from fusion.media.storage import MediaStore
from fusion.plugins.base import IMAGES, ImageDraft, ProductDraft, VariantDraft
from fusion.stores.catalog_rules import CatalogRules, channel_price
from fusion.stores.models import Store
from fusion.stores.stock_rules import channel_shown


def product_draft(
    session: Session, listing: Listing, media: MediaStore | None = None
) -> ProductDraft:
    """The listing's product as the hub pushes it: its variants not being deleted, by SKU,
    each at the figure the channel is shown after the store's and the listing's stock rules
    and at the price the store's price rule makes of its own (or the product's base price),
    with the store's platform names for the product's category and the variants' attributes,
    and its images in order (read from ``media``; without it, a draft to compare, not to
    push). Raises PermanentError when the product is gone, has no such variant, or a variant
    has no price and the product no base price."""
    product = session.get(Product, listing.product_id)
    if product is None:
        raise PermanentError(f"product {listing.product_id} no longer exists")
    # A variant being deleted is left out: pushing the draft takes it off the platform.
    variants = session.scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id == product.id, ProductVariant.deleting_at.is_(None))
        .order_by(ProductVariant.sku)
    ).all()
    if not variants:
        raise PermanentError(f"product {product.id} has no variants to publish")
    store = session.get(Store, listing.store_id)
    store_rules = store.stock_rules if store is not None else {}
    # Checked when they were set; a store changed meanwhile by hand fails the push here.
    catalog = CatalogRules.parse(store.catalog_rules if store is not None else {})
    return ProductDraft(
        title=product.title,
        description=product.description,
        currency=variants[0].currency,
        # The listing id is stable across retries: the platform sees the same key and a
        # retried create never makes a second product.
        idempotency_key=str(listing.id),
        variants=[
            VariantDraft(
                sku=v.sku,
                price=channel_price(v.sku, _hub_price(product, v), catalog.pricing),
                # What this channel is shown, after the store's and the listing's rules.
                quantity=channel_shown(v.available_quantity, store_rules, listing.stock_rules),
                title=v.title,
                options=catalog.options(v.attributes or {}),
            )
            for v in variants
        ],
        attributes={
            **(product.attributes or {}),
            "vendor": product.vendor,
            "product_type": product.product_type,
            "tags": list(product.tags or []),
        },
        images=_images(session, product, media),
        sent_images=_sent_images(listing),
        category=catalog.category(product.category),
        hub_category=product.category,
    )


def _images(session: Session, product: Product, media: MediaStore | None) -> list[ImageDraft]:
    rows = session.scalars(
        select(ProductImage)
        .where(ProductImage.product_id == product.id)
        .order_by(ProductImage.position)
    ).all()
    return [
        ImageDraft(
            key=str(row.id),
            sha256=row.sha256,
            content_type=row.content_type,
            filename=row.filename,
            alt=row.alt,
            read=_reader(media, row.storage_key),
            url=media.url(row.storage_key) if media is not None else None,
        )
        for row in rows
    ]


def _sent_images(listing: Listing) -> dict[str, str]:
    """What the listing's last push left on its platform: image key -> the platform's id."""
    sent = (listing.platform_data or {}).get(IMAGES)
    return {str(k): str(v) for k, v in sent.items()} if isinstance(sent, dict) else {}


def _reader(media: MediaStore | None, key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        if media is None:
            raise PermanentError("this draft is for comparing: its images cannot be read")
        return media.get(key)

    return read


def _hub_price(product: Product, variant: ProductVariant) -> Decimal:
    """The variant's own price, else its product's base price."""
    price = variant.price if variant.price is not None else product.base_price
    if price is None:
        raise PermanentError(
            f"price: variant {variant.sku} has no price and its product no base_price"
        )
    return price


def draft_content(draft: ProductDraft) -> dict[str, Any]:
    """What a person approves of a draft: everything it pushes but stock."""
    content: dict[str, Any] = {
        "title": draft.title,
        "description": draft.description,
        "currency": draft.currency,
        "attributes": dict(draft.attributes),
        "variants": [
            {"sku": v.sku, "title": v.title, "price": str(v.price)} for v in draft.variants
        ],
    }
    if draft.images:  # a product without images approves as it always did
        content["images"] = [image.sha256 for image in draft.images]
    # What the store maps is pushed too (absent before catalog rules, so older approvals'
    # content stays what it was when nothing is mapped).
    if draft.category is not None:
        content["category"] = draft.category
    if any(v.options for v in draft.variants):
        content["options"] = {v.sku: dict(v.options) for v in draft.variants}
    return content


def listing_content(listing: Listing, action: str, draft: ProductDraft | None) -> dict[str, Any]:
    """The content of ``action`` (publish, update, delist) on ``listing``: which listing, and
    the product it would push (``draft``; None when there is nothing pushable) or, for a
    delist, the platform's product it would take down."""
    content: dict[str, Any] = {
        "action": action,
        "listing_id": str(listing.id),
        "store_id": str(listing.store_id),
        "product_id": str(listing.product_id),
    }
    if action == "delist":
        content["external_id"] = listing.external_id
    else:
        content["product"] = draft_content(draft) if draft is not None else None
    return content


def current_listing_content(session: Session, listing: Listing, action: str) -> dict[str, Any]:
    """:func:`listing_content` of the listing's product as it is now (an approval request's
    snapshot). A product with nothing to push is content too: once it has, it differs."""
    draft = None
    if action != "delist":
        try:
            draft = product_draft(session, listing)
        except PermanentError:
            draft = None
    return listing_content(listing, action, draft)
