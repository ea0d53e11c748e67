"""What adoption does with each listing a store already sells (fusion.onboarding.matching):
matched by SKU, a barcode match named but never linked alone, every conflict said."""

from __future__ import annotations

import uuid
from typing import Any

from fusion.onboarding.matching import CatalogVariant, decide, shared_skus
from fusion.onboarding.models import AdoptionAction

MUG, BOWL = uuid.uuid4(), uuid.uuid4()
CATALOG = [
    CatalogVariant("MUG-S", MUG, 10),
    CatalogVariant("MUG-L", MUG, 4, barcode="0001"),
    CatalogVariant("BOWL", BOWL, 2, barcode="0002"),
]
BY_SKU = {v.sku: v for v in CATALOG}
BY_BARCODE = {v.barcode: v for v in CATALOG if v.barcode}


def v(sku: str, quantity: int = 0, price: str | None = "9.00", barcode: str | None = None) -> Any:
    return {"sku": sku, "quantity": quantity, "price": price, "barcode": barcode, "title": ""}


def plan(*variants: Any, listed: Any = None, shared: Any = None, external_id: str = "L1") -> Any:
    return decide(
        list(variants),
        external_id=external_id,
        by_sku=BY_SKU,
        by_barcode=BY_BARCODE,
        listed=listed or {},
        shared=shared or set(),
    )


def kinds(decision: Any) -> list[str]:
    return [c["kind"] for c in decision.conflicts]


def test_a_listing_whose_skus_are_one_products_links_to_it() -> None:
    decision = plan(v("MUG-S", 10), v("MUG-L", 4))
    assert (decision.action, decision.product_id, decision.conflicts) == (
        AdoptionAction.LINK,
        MUG,
        (),
    )


def test_a_stock_figure_that_differs_is_said_and_does_not_block() -> None:
    decision = plan(v("MUG-S", 7))
    assert decision.action is AdoptionAction.LINK
    [conflict] = decision.conflicts
    assert (conflict["kind"], conflict["sku"], conflict["hub"], conflict["channel"]) == (
        "stock_differs",
        "MUG-S",
        10,
        7,
    )


def test_skus_the_catalog_lacks_are_new_on_a_linked_listing_and_a_new_product_alone() -> None:
    linked = plan(v("MUG-S", 10), v("MUG-XL", 1))
    assert (linked.action, linked.new_skus) == (AdoptionAction.LINK, ("MUG-XL",))
    created = plan(v("TEA-1"), v("TEA-2"))
    assert (created.action, created.product_id, created.new_skus) == (
        AdoptionAction.CREATE,
        None,
        ("TEA-1", "TEA-2"),
    )


def test_a_sku_on_two_listings_keeps_both_out() -> None:
    listings = [[v("MUG-S")], [v("MUG-S"), v("X")], [v("Y")]]
    assert shared_skus(listings) == {"MUG-S"}
    decision = plan(v("MUG-S", 10), shared={"MUG-S"})
    assert decision.action is AdoptionAction.CONFLICT
    assert kinds(decision) == ["sku_on_several_listings"]


def test_a_barcode_match_with_another_sku_is_named_not_linked() -> None:
    decision = plan(v("CHANNEL-BOWL", 2, barcode="0002"))
    assert decision.action is AdoptionAction.CONFLICT
    assert kinds(decision) == ["barcode_only"]
    assert "the catalog's SKU BOWL" in decision.conflicts[0]["reason"]


def test_a_variant_without_sku_or_price_blocks() -> None:
    assert kinds(plan(v(""))) == ["no_sku"]
    assert kinds(plan(v("NEW", price=None))) == ["no_price"]
    assert kinds(plan()) == ["no_sku"]


def test_skus_of_two_products_block() -> None:
    decision = plan(v("MUG-S", 10), v("BOWL", 2))
    assert (decision.action, kinds(decision)) == (AdoptionAction.CONFLICT, ["several_products"])


def test_a_product_listed_already_is_adopted_once_and_never_under_another_id() -> None:
    assert plan(v("MUG-S", 10), listed={MUG: "L1"}).action is AdoptionAction.ADOPTED
    other = plan(v("MUG-S", 10), listed={MUG: "L9"})
    assert (other.action, kinds(other)) == (AdoptionAction.CONFLICT, ["product_listed_already"])
    # a listing the hub never published is filled in
    assert plan(v("MUG-S", 10), listed={MUG: None}).action is AdoptionAction.LINK


def test_a_sku_being_deleted_blocks() -> None:
    deleting = CatalogVariant("OLD", MUG, 1, deleting=True)
    decision = decide(
        [v("OLD", 1)],
        external_id="L1",
        by_sku={"OLD": deleting},
        by_barcode={},
        listed={},
        shared=set(),
    )
    assert kinds(decision) == ["being_deleted"]
