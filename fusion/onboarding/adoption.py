"""Adopting what a store already sells: its listings read from the platform, matched to the
catalog (``fusion.onboarding.matching``) as a preview, then applied as a job with a result per
listing. Nothing is created or changed on the channel's listings.

Reading is resumable at the granularity of a page: each page the platform answers is kept
(``store_adoption_listings``) in one transaction with the cursor of the next, so a read job
that is retried, or rescheduled for rate-limit tokens, asks for the page after the last one
kept. Applying commits a batch of listings with their results, and a resumed apply goes on
after the last listing it recorded; a listing adopted already is never adopted again.

Adoption links a matched listing as the product's ``published`` listing on the store, with
the platform's id, so the stock push and the order ingestion treat it like one the hub
made. Stock: for a linked SKU the hub's figure wins and is pushed to the channel (the
difference is shown in the preview); a listing made into a new catalog product brings its
channel's figures in, each an ``import`` movement of the stock ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, insert, or_, select
from sqlalchemy.orm import Session

from fusion.catalog.deletes import PUSHED_SKUS
from fusion.catalog.models import Listing, ListingStatus, Product, ProductVariant
from fusion.errors import Conflict, NotFound
from fusion.inventory.ledger import move
from fusion.inventory.models import MovementKind
from fusion.inventory.service import fan_out_stock
from fusion.jobs import items
from fusion.jobs import service as jobs
from fusion.jobs.items import ItemResult
from fusion.jobs.models import ItemStatus, Job, JobItem, JobStatus
from fusion.onboarding.matching import (
    SKU_ON_SEVERAL_LISTINGS,
    STOCK_DIFFERS,
    CatalogVariant,
    Decision,
    decide,
    shared_skus,
)
from fusion.onboarding.models import Adoption, AdoptionAction, AdoptionListing, AdoptionStatus
from fusion.plugins.base import ProductPage, RemoteProduct
from fusion.stores.models import Store

READ_LISTINGS_JOB = "read_store_listings"
APPLY_ADOPTION_JOB = "apply_adoption"
BATCH = 200  # listings matched or applied at a time


def start(
    session: Session, *, org_id: uuid.UUID, store_id: uuid.UUID, created_by: uuid.UUID | None
) -> Adoption:
    """A new adoption of the store's listings, and the job that reads them. Raises NotFound
    for a store not of the org, Conflict while another adoption of the store is reading or
    applying (its job pending or running)."""
    # The store's row lock makes two adoptions asked for at once start one after the other.
    if session.get(Store, store_id, with_for_update=True) is None:
        raise NotFound(f"no store {store_id}")
    # An adoption whose job ended without finishing it (failed, cancelled) holds nothing up.
    busy = session.scalar(
        select(Adoption.id)
        .join(
            Job,
            Job.id
            == case(
                (Adoption.status == AdoptionStatus.READING, Adoption.read_job_id),
                else_=Adoption.job_id,
            ),
        )
        .where(
            Adoption.store_id == store_id,
            Adoption.status.in_([AdoptionStatus.READING, AdoptionStatus.CONFIRMED]),
            Job.status.in_([JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.RUNNING]),
        )
    )
    if busy is not None:
        raise Conflict(
            "another adoption of this store is under way", details={"adoption_id": str(busy)}
        )
    adoption = Adoption(id=uuid.uuid4(), org_id=org_id, store_id=store_id, created_by=created_by)
    session.add(adoption)
    session.flush()
    job = jobs.enqueue(
        session,
        org_id=org_id,
        job_type=READ_LISTINGS_JOB,
        store_id=store_id,
        payload={"adoption_id": str(adoption.id)},
        created_by=created_by,
    )
    adoption.read_job_id = job.id
    return adoption


def get_adoption(session: Session, store_id: uuid.UUID, adoption_id: uuid.UUID) -> Adoption:
    """The adoption ``adoption_id`` of the store; raises NotFound otherwise."""
    adoption = session.get(Adoption, adoption_id)
    if adoption is None or adoption.store_id != store_id:
        raise NotFound(f"no adoption {adoption_id} of store {store_id}")
    return adoption


def reading_from(session: Session, adoption_id: uuid.UUID) -> tuple[str | None, bool]:
    """Where reading goes on: (the cursor of the next page, whether every page is read)."""
    adoption = session.get(Adoption, adoption_id)
    if adoption is None:
        raise NotFound(f"no adoption {adoption_id}")
    done = adoption.status is not AdoptionStatus.READING or (
        adoption.pages > 0 and adoption.cursor is None
    )
    return adoption.cursor, done


def keep_page(session: Session, *, adoption_id: uuid.UUID, page: ProductPage) -> int:
    """Keep one page of the store's listings and the cursor of the next, together (a listing
    the adoption holds already is kept once). Returns how many listings it has now."""
    adoption = session.get(Adoption, adoption_id, with_for_update=True)
    if adoption is None:
        raise NotFound(f"no adoption {adoption_id}")
    count = (
        session.scalar(select(func.count()).where(AdoptionListing.adoption_id == adoption_id)) or 0
    )
    held = set(
        session.scalars(
            select(AdoptionListing.external_id).where(
                AdoptionListing.adoption_id == adoption_id,
                AdoptionListing.external_id.in_([p.external_id for p in page.products]),
            )
        )
    )
    rows = []
    for product in page.products:
        if product.external_id in held:
            continue
        held.add(product.external_id)
        count += 1
        rows.append(_row(adoption, count, product))
    if rows:
        session.execute(insert(AdoptionListing), rows)
    adoption.cursor = page.next_cursor
    adoption.pages += 1
    return count


def _row(adoption: Adoption, position: int, product: RemoteProduct) -> dict[str, Any]:
    variants = [
        {
            "sku": v.sku,
            "quantity": v.quantity,
            "barcode": v.barcode,
            "title": v.title[:500],
            "price": None if v.price is None else str(v.price),
        }
        for v in product.variants
    ] or [
        {"sku": sku, "quantity": q, "price": None, "barcode": None, "title": ""}
        for sku, q in product.quantities.items()
    ]
    return {
        "id": uuid.uuid4(),
        "org_id": adoption.org_id,
        "adoption_id": adoption.id,
        "position": position,
        "external_id": product.external_id[:255],
        "title": product.title[:500],
        "url": (product.url or None),
        "variants": variants,
        "raw": dict(product.raw),
    }


def make_plan(session: Session, *, adoption_id: uuid.UUID) -> dict[str, int]:
    """Match every listing read to the catalog and keep each decision; the adoption is then
    ``previewed``. Returns how many listings of each action."""
    adoption = session.get(Adoption, adoption_id, with_for_update=True)
    if adoption is None:
        raise NotFound(f"no adoption {adoption_id}")
    if adoption.status is not AdoptionStatus.READING:
        return dict(adoption.plan)
    rows = list(
        session.scalars(
            select(AdoptionListing)
            .where(AdoptionListing.adoption_id == adoption_id)
            .order_by(AdoptionListing.position)
        )
    )
    shared = shared_skus(r.variants for r in rows)
    tally = {a.value: 0 for a in AdoptionAction}
    for start_at in range(0, len(rows), BATCH):
        batch = rows[start_at : start_at + BATCH]
        for row, decision in zip(batch, _decisions(session, adoption, batch, shared), strict=True):
            row.action, row.product_id = decision.action, decision.product_id
            row.conflicts = list(decision.conflicts)
            tally[decision.action.value] += 1
    adoption.plan = tally
    adoption.status = AdoptionStatus.PREVIEWED
    return tally


def _decisions(
    session: Session, adoption: Adoption, rows: Sequence[AdoptionListing], shared: set[str]
) -> list[Decision]:
    """Each row's decision against the catalog as it is now."""
    skus = {str(v.get("sku")) for r in rows for v in r.variants if v.get("sku")}
    barcodes = {str(v.get("barcode")) for r in rows for v in r.variants if v.get("barcode")}
    found = session.scalars(
        select(ProductVariant).where(
            or_(ProductVariant.sku.in_(sorted(skus)), ProductVariant.barcode.in_(sorted(barcodes)))
        )
    )
    catalog = [
        CatalogVariant(
            v.sku, v.product_id, v.available_quantity, v.barcode, v.deleting_at is not None
        )
        for v in found
    ]
    by_sku = {v.sku: v for v in catalog}
    by_barcode = {v.barcode: v for v in catalog if v.barcode}
    rows_listed = session.execute(
        select(Listing.product_id, Listing.external_id).where(
            Listing.store_id == adoption.store_id,
            Listing.product_id.in_(list({v.product_id for v in catalog})),
        )
    )
    listed = {product_id: external_id for product_id, external_id in rows_listed}
    return [
        decide(
            r.variants,
            external_id=r.external_id,
            by_sku=by_sku,
            by_barcode=by_barcode,
            listed=listed,
            shared=shared,
        )
        for r in rows
    ]


def confirm(
    session: Session,
    *,
    store_id: uuid.UUID,
    adoption_id: uuid.UUID,
    create_unmatched: bool = False,
    created_by: uuid.UUID | None = None,
) -> Job:
    """Apply the previewed plan as an ``apply_adoption`` job: link the matched listings and,
    with ``create_unmatched``, make the others new catalog products. Raises NotFound, and
    Conflict while it is still reading or once it was confirmed."""
    adoption = get_adoption(session, store_id, adoption_id)
    session.refresh(adoption, with_for_update=True)
    if adoption.status is not AdoptionStatus.PREVIEWED:
        raise Conflict(
            f"the adoption is {adoption.status.value}: only a previewed one can be confirmed",
            details={"job_id": str(adoption.job_id or adoption.read_job_id)},
        )
    job = jobs.enqueue(
        session,
        org_id=adoption.org_id,
        job_type=APPLY_ADOPTION_JOB,
        store_id=store_id,
        payload={"adoption_id": str(adoption.id), "create_unmatched": create_unmatched},
        created_by=created_by,
    )
    adoption.status, adoption.job_id = AdoptionStatus.CONFIRMED, job.id
    return job


def next_listings(
    session: Session,
    *,
    adoption_id: uuid.UUID,
    job_id: uuid.UUID,
    external_ids: Sequence[str] | None,
) -> list[AdoptionListing]:
    """The next batch to apply, in the order read: those after the last one this job recorded
    (a resumed job goes on where it was), only ``external_ids`` when given (a retry)."""
    done = session.scalar(
        select(func.max(JobItem.data["position"].as_integer())).where(JobItem.job_id == job_id)
    )
    stmt = select(AdoptionListing).where(
        AdoptionListing.adoption_id == adoption_id, AdoptionListing.position > (done or 0)
    )
    if external_ids is not None:
        stmt = stmt.where(AdoptionListing.external_id.in_(list(external_ids)))
    return list(session.scalars(stmt.order_by(AdoptionListing.position).limit(BATCH)))


def actor_of(session: Session, adoption_id: uuid.UUID) -> str:
    """Who the ledger says brought the stock in: the person who started the adoption."""
    adoption = session.get(Adoption, adoption_id)
    if adoption is None:
        raise NotFound(f"no adoption {adoption_id}")
    return f"user:{adoption.created_by}" if adoption.created_by else "system"


def apply_listings(
    session: Session,
    *,
    adoption_id: uuid.UUID,
    job_id: uuid.UUID,
    rows: Sequence[AdoptionListing],
    create_unmatched: bool,
    actor: str,
) -> dict[str, int]:
    """Adopt ``rows`` in the caller's transaction, each decided again against the catalog as
    it is now, and record each one's result; the hub's figure of every linked SKU whose
    channel showed another is pushed. Returns the batch's tally."""
    adoption = session.get(Adoption, adoption_id)
    if adoption is None:
        raise NotFound(f"no adoption {adoption_id}")
    # Which SKUs the store sells on two listings is known from the whole read, kept per row.
    shared = {c["sku"] for r in rows for c in r.conflicts if c["kind"] == SKU_ON_SEVERAL_LISTINGS}
    adopter = _Adopter(session, adoption, job_id, actor)
    results = []
    for row, decision in zip(rows, _decisions(session, adoption, rows, shared), strict=True):
        data = {
            "position": row.position,
            "external_id": row.external_id,
            "action": decision.action.value,
        }
        if decision.action is AdoptionAction.CONFLICT:
            reasons = "; ".join(f"{c['sku'] or '*'}: {c['reason']}" for c in decision.conflicts)
            results.append(ItemResult(_key(row), ItemStatus.FAILED, reasons, data))
        elif decision.action is AdoptionAction.ADOPTED:
            results.append(ItemResult(_key(row), ItemStatus.SKIPPED, "adopted already", data))
        elif decision.action is AdoptionAction.CREATE and not create_unmatched:
            reason = "no SKU of it is in the catalog (confirm with create_unmatched to add it)"
            results.append(ItemResult(_key(row), ItemStatus.SKIPPED, reason, data))
        elif (taken := adopter.listed_as(decision)) not in (None, row.external_id):
            # An earlier listing of this batch (an Amazon SKU of the same product) took it.
            reason = f"*: the product is on this store as {taken}"
            results.append(ItemResult(_key(row), ItemStatus.FAILED, reason, data))
        else:
            listing = adopter.adopt(row, decision, create_unmatched)
            data |= {"product_id": str(listing.product_id), "listing_id": str(listing.id)}
            results.append(ItemResult(_key(row), ItemStatus.OK, "", data))
    session.flush()
    if adopter.to_push:
        fan_out_stock(session, org_id=adoption.org_id, skus=sorted(adopter.to_push))
    return items.record(session, org_id=adoption.org_id, job_id=job_id, results=results)


def _key(row: AdoptionListing) -> str:
    return f"listing {row.external_id}"


class _Adopter:
    """Links or creates, in one transaction, and gathers the SKUs whose figure is pushed."""

    def __init__(self, session: Session, adoption: Adoption, job_id: uuid.UUID, actor: str):
        self.session, self.adoption, self.job_id, self.actor = session, adoption, job_id, actor
        self.to_push: set[str] = set()

    def listed_as(self, decision: Decision) -> str | None:
        """The platform id the decision's product is listed under on the store now (None:
        not listed, or never published)."""
        if decision.product_id is None:
            return None
        return self.session.scalar(
            select(Listing.external_id).where(
                Listing.product_id == decision.product_id,
                Listing.store_id == self.adoption.store_id,
            )
        )

    def adopt(self, row: AdoptionListing, decision: Decision, create: bool) -> Listing:
        product_id = decision.product_id or self._product(row)
        new = decision.new_skus if create or decision.product_id is None else ()
        for variant in row.variants:
            if variant["sku"] in new:
                self._variant(product_id, variant)
        self.to_push |= {c["sku"] for c in decision.conflicts if c["kind"] == STOCK_DIFFERS}
        skus = sorted({v["sku"] for v in row.variants} - (set(decision.new_skus) - set(new)) - {""})
        listing = self.session.scalar(
            select(Listing).where(
                Listing.product_id == product_id, Listing.store_id == self.adoption.store_id
            )
        )
        if listing is None:
            listing = Listing(
                id=uuid.uuid4(),
                org_id=self.adoption.org_id,
                product_id=product_id,
                store_id=self.adoption.store_id,
            )
            self.session.add(listing)
        listing.status = ListingStatus.PUBLISHED
        listing.external_id, listing.external_url = row.external_id, row.url
        listing.platform_data = {**row.raw, PUSHED_SKUS: skus, "adopted_by": str(self.adoption.id)}
        listing.last_error = None
        listing.published_at = listing.last_synced_at = datetime.now(UTC)
        return listing

    def _product(self, row: AdoptionListing) -> uuid.UUID:
        product = Product(
            id=uuid.uuid4(), org_id=self.adoption.org_id, title=row.title or row.external_id
        )
        self.session.add(product)
        self.session.flush()
        return product.id

    def _variant(self, product_id: uuid.UUID, remote: dict[str, Any]) -> None:
        variant = ProductVariant(
            id=uuid.uuid4(),
            org_id=self.adoption.org_id,
            product_id=product_id,
            sku=remote["sku"],
            title=remote.get("title") or "",
            price=Decimal(str(remote["price"])).quantize(Decimal("0.01")),
            barcode=remote.get("barcode") or None,
            available_quantity=0,
            stock_version=0,
        )
        self.session.add(variant)
        self.session.flush()
        quantity = max(0, int(remote.get("quantity") or 0))
        if quantity:
            move(
                self.session,
                variant=variant,
                kind=MovementKind.IMPORT,
                actor=self.actor,
                job_id=self.job_id,
                set_to=quantity,
                reason=f"adopted from the store's listing: {quantity} on the channel",
            )


def finish(session: Session, *, adoption_id: uuid.UUID) -> None:
    """Mark the adoption applied."""
    adoption = session.get(Adoption, adoption_id)
    if adoption is not None:
        adoption.status = AdoptionStatus.APPLIED


def retry_listings(payload: Any, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """An apply_adoption of the failed listings only (keys are ``listing <external id>``)."""
    external_ids = sorted(k.split(" ", 1)[1] for k in keys)
    return APPLY_ADOPTION_JOB, {**dict(payload), "external_ids": external_ids}


items.retries_with(APPLY_ADOPTION_JOB, retry_listings)
