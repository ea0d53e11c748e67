"""Orders: reading them, ingesting them once, and their stock effect and fan-out.

An order takes its stock once (``stock_applied_at``), recording what it took per SKU
(``stock_taken``: less than asked when the hub ran out); a cancellation gives exactly that
back, once (``stock_restored_at``), whichever path (webhook, queue, pull) reports it first.

An order placed before its store was connected is *history*: stored, so that it shows, but it
takes no stock and its cancellation gives none back. The merchant ran the shop before the hub
did and the stock the hub was given already had those orders netted out; the first pull
reaches back days (``fusion.orders.jobs``) and would otherwise take them a second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.catalog.models import ProductVariant
from fusion.errors import NotFound
from fusion.inventory.ledger import SYSTEM_ACTOR, move
from fusion.inventory.models import MovementKind
from fusion.orders.models import Order, OrderLine
from fusion.orders.returns import restocked_by_sku
from fusion.orders.shipments import record_platform_shipments
from fusion.plugins.base import RemoteOrder
from fusion.stores.models import Store

RECONCILE_JOB = "reconcile_orders"  # the pull behind the order webhooks, which get lost
FULFIL_JOB = "fulfil_order"  # tells the platform an order's lines shipped (fulfilment.py)


def get_order(session: Session, order_id: uuid.UUID) -> tuple[Order, list[OrderLine]]:
    """The order and its lines, in the session's org. Raises NotFound otherwise."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound("No such order.")
    lines = session.scalars(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.created_at)
    ).all()
    return order, list(lines)


@dataclass(frozen=True)
class StockChange:
    """One SKU's stock effect of an order: what was asked, what was taken, what is left."""

    sku: str
    ordered: int
    taken: int
    remaining: int

    @property
    def clamped(self) -> bool:
        """The hub held less than the order asked for (the quantity stopped at 0)."""
        return self.taken < self.ordered


@dataclass(frozen=True)
class Restock:
    """One SKU's stock given back by a cancelled order: what came back, what is there now."""

    sku: str
    returned: int
    remaining: int


@dataclass(frozen=True)
class Ingested:
    """What :func:`ingest_order` did: the order's id, whether this call stored it, the stock
    changes it applied and the stock it gave back (each empty unless this call did it)."""

    order_id: uuid.UUID
    created: bool
    stock: list[StockChange] = field(default_factory=list)
    unknown_skus: list[str] = field(default_factory=list)
    restored: list[Restock] = field(default_factory=list)

    @property
    def stock_applied(self) -> bool:
        return bool(self.stock) or bool(self.unknown_skus)

    @property
    def changed_skus(self) -> list[str]:
        """The SKUs whose stock this call changed, for the fan-out."""
        return sorted({c.sku for c in self.stock} | {r.sku for r in self.restored})


def ingest_order(
    session: Session,
    *,
    org_id: uuid.UUID,
    store_id: uuid.UUID,
    order: RemoteOrder,
    job_id: uuid.UUID | None = None,
    webhook_delivery_id: uuid.UUID | None = None,
) -> Ingested:
    """Store ``order`` once per (org, store, external id) with its lines, and apply its stock
    effect exactly once, in the caller's transaction.

    The order row is inserted ON CONFLICT DO NOTHING, so a second delivery (or the
    reconciliation pull) never makes a second row. Stock is taken only by the transaction
    that flips ``stock_applied_at`` from NULL (a conditional UPDATE: a concurrent second
    transaction waits on the row lock and then finds it set), so a re-run changes nothing.
    Each matching variant's ``available_quantity`` drops by the ordered quantity but never
    below 0 (the returned change says it was clamped); lines whose SKU the hub does not know
    are reported in ``unknown_skus``. A cancelled order gives back what it took, once (see
    the module); one first seen cancelled takes nothing. The stored status follows the
    platform's, except that a cancelled order stays cancelled and a report older than the
    state held (by the platform's time, ``RemoteOrder.updated_at``: deliveries come unordered
    and can be replayed) never replaces it; a cancellation applies whatever its time. Every
    stock change is a
    movement of the ledger (``fusion.inventory.ledger``) naming the order and ``job_id``:
    kind ``order`` with what was actually taken, ``cancellation`` with what came back. An
    order whose ``placed_at`` is before the store was connected is stored with ``history``
    set and never takes or gives back stock (one without ``placed_at`` is taken to be new).
    The order keeps ``job_id`` and ``webhook_delivery_id`` of the call that first stored it.
    Raises ValueError for an order without an external id.
    """
    if not order.external_id:
        raise ValueError("an order needs an external id")
    key = (
        Order.org_id == org_id,
        Order.store_id == store_id,
        Order.external_id == order.external_id,
    )
    new_id = uuid.uuid4()
    inserted = session.execute(
        pg_insert(Order)
        .values(
            id=new_id,
            org_id=org_id,
            store_id=store_id,
            external_id=order.external_id,
            status=order.status,
            currency=order.currency,
            total=order.total,
            placed_at=order.placed_at,
            platform_updated_at=order.updated_at,
            history=_before_connected(session, store_id, order.placed_at),
            raw=dict(order.raw),
            job_id=job_id,
            webhook_delivery_id=webhook_delivery_id,
        )
        .on_conflict_do_nothing(index_elements=["org_id", "store_id", "external_id"])
        .returning(Order.id)
    ).scalar_one_or_none()
    if inserted is not None and order.lines:
        session.execute(
            insert(OrderLine),
            [
                {
                    "id": uuid.uuid4(),
                    "org_id": org_id,
                    "order_id": new_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "external_line_id": line.external_line_id,
                }
                for line in order.lines
            ],
        )
    created = inserted is not None
    if created:
        telemetry.ORDERS_INGESTED.inc_on_commit(session, _platform(session, store_id))
    order_id = inserted or _order_id(session, key)
    record_platform_shipments(session, order_id, order.shipments)
    if session.scalar(select(Order.history).where(Order.id == order_id)):
        # The platform's status, whatever it is (nothing was taken, so nothing to guard),
        # unless it is older than the one held.
        session.execute(update(Order).where(*key, _not_older(order)).values(**_status_of(order)))
        return Ingested(order_id=order_id, created=created)
    if order.cancelled:
        return _cancel(session, key, order, created, job_id)
    session.execute(
        update(Order)
        .where(*key, _not_older(order), Order.stock_restored_at.is_(None))
        .values(**_status_of(order))
    )
    # An order the reconciliation pull stored first still has its stock to apply: the guard
    # is stock_applied_at, not who inserted the row.
    applying = session.execute(
        update(Order)
        .where(*key, Order.stock_applied_at.is_(None))
        .values(stock_applied_at=func.now())
        .returning(Order.id)
    ).scalar_one_or_none()
    if applying is None:
        return Ingested(order_id=order_id, created=created)
    stock, unknown = _take_stock(session, order_id, job_id)
    return Ingested(order_id=order_id, created=created, stock=stock, unknown_skus=unknown)


def add_prices(session: Session, order_id: uuid.UUID, order: RemoteOrder) -> int:
    """Give a stored order the prices of a fuller report of it (Amazon: the Orders API's,
    read after the notification's lines took the stock): each line's unit price (matched by
    ``external_line_id``), the total and the currency. Stock, status and lines stay as they
    are. Returns the lines priced. In the caller's transaction."""
    priced = 0
    for line in order.lines:
        if line.external_line_id:
            priced += len(
                session.execute(
                    update(OrderLine)
                    .where(
                        OrderLine.order_id == order_id,
                        OrderLine.external_line_id == line.external_line_id,
                    )
                    .values(unit_price=line.unit_price)
                    .returning(OrderLine.id)
                ).all()
            )
    session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(total=order.total, currency=order.currency, raw=dict(order.raw))
    )
    return priced


def _platform(session: Session, store_id: uuid.UUID) -> str:
    return str(session.scalar(select(Store.platform).where(Store.id == store_id)) or "unknown")


def _cancel(
    session: Session,
    key: tuple[Any, ...],
    order: RemoteOrder,
    created: bool,
    job_id: uuid.UUID | None,
) -> Ingested:
    # First seen cancelled: it never took anything, so there is nothing to give back.
    # A cancellation is final on every platform: it applies whatever its time (the stock
    # follows the sale), and the time it carries still moves the order's clock on.
    session.execute(
        update(Order)
        .where(*key, Order.stock_applied_at.is_(None))
        .values(stock_applied_at=func.now(), stock_restored_at=func.now(), **_status_of(order))
    )
    restoring = session.execute(
        update(Order)
        .where(*key, Order.stock_restored_at.is_(None))
        .values(stock_restored_at=func.now(), **_status_of(order))
        .returning(Order.id, Order.stock_taken)
    ).first()
    if restoring is None:
        return Ingested(order_id=_order_id(session, key), created=created)
    taken = {str(k): int(v) for k, v in restoring.stock_taken.items()}
    # Lines returned before the cancellation gave their stock back already.
    for sku, given in restocked_by_sku(session, restoring.id).items():
        taken[sku] = taken.get(sku, 0) - given
    restored = _give_back(session, taken, restoring.id, order.external_id, job_id)
    return Ingested(order_id=restoring.id, created=created, restored=restored)


def _not_older(order: RemoteOrder) -> ColumnElement[bool]:
    """The stored order holds no newer state than ``order``: the platform's time of the one
    held is unknown, or not after ``order``'s. A report without a time replaces only a status
    held without one (nothing to order them by)."""
    if order.updated_at is None:
        return Order.platform_updated_at.is_(None)
    return or_(Order.platform_updated_at.is_(None), Order.platform_updated_at <= order.updated_at)


def _status_of(order: RemoteOrder) -> dict[str, Any]:
    """The columns a report of ``order`` sets: its status, and the order's clock moved on to
    its time (never back: GREATEST skips a NULL)."""
    return {
        "status": order.status,
        "platform_updated_at": func.greatest(Order.platform_updated_at, order.updated_at),
    }


def _before_connected(session: Session, store_id: uuid.UUID, placed_at: datetime | None) -> bool:
    if placed_at is None:
        return False
    connected = session.scalar(
        # Whole seconds: platforms stamp orders to the second, so an order placed in the very
        # second the store was connected counts as new (taking its stock) rather than history.
        select(func.date_trunc("second", Store.created_at)).where(Store.id == store_id)
    )
    return connected is not None and placed_at < connected


def _order_id(session: Session, key: tuple[Any, ...]) -> uuid.UUID:
    return session.execute(select(Order.id).where(*key)).scalar_one()


def _locked_variants(session: Session, skus: Sequence[str]) -> dict[str, ProductVariant]:
    # Locked in SKU order so two orders touching the same SKUs cannot deadlock.
    return {
        v.sku: v
        for v in session.scalars(
            select(ProductVariant)
            .where(ProductVariant.sku.in_(sorted(skus)))
            .order_by(ProductVariant.sku)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }


def _give_back(
    session: Session,
    taken: dict[str, int],
    order_id: uuid.UUID,
    external_id: str,
    job_id: uuid.UUID | None,
) -> list[Restock]:
    variants = _locked_variants(session, [sku for sku, count in taken.items() if count > 0])
    restored = []
    for sku in sorted(variants):
        movement = move(
            session,
            variant=variants[sku],
            kind=MovementKind.CANCELLATION,
            actor=SYSTEM_ACTOR,
            reason=f"order {external_id} cancelled: gives back the {taken[sku]} it took",
            delta=taken[sku],
            order_id=order_id,
            job_id=job_id,
        )
        restored.append(Restock(sku, taken[sku], movement.on_hand_after))
    return restored


def _take_stock(
    session: Session, order_id: uuid.UUID, job_id: uuid.UUID | None
) -> tuple[list[StockChange], list[str]]:
    # The stored lines, not the delivery's: an order first stored by the pull applies its own.
    lines = session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)).all()
    wanted: dict[str, int] = {}
    for line in lines:
        if line.sku and line.quantity > 0:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    if not wanted:
        return [], []
    variants = _locked_variants(session, list(wanted))
    external_id = session.execute(select(Order.external_id).where(Order.id == order_id)).scalar()
    changes: list[StockChange] = []
    for sku in sorted(wanted):
        variant = variants.get(sku)
        if variant is None:
            continue
        taken = min(wanted[sku], variant.available_quantity)
        short = "" if taken == wanted[sku] else f", took {taken}: the stock ran out"
        movement = move(
            session,
            variant=variant,
            kind=MovementKind.ORDER,
            actor=SYSTEM_ACTOR,
            reason=f"order {external_id}: {wanted[sku]} ordered{short}",
            delta=-taken,
            order_id=order_id,
            job_id=job_id,
        )
        changes.append(StockChange(sku, wanted[sku], taken, movement.on_hand_after))
    for line in lines:
        if line.variant_id is None and line.sku in variants:
            line.variant_id = variants[line.sku].id
    session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(stock_taken={c.sku: c.taken for c in changes})
    )
    session.flush()
    unknown = sorted(set(wanted) - set(variants))
    if unknown:
        platform = session.scalar(
            select(Store.platform)
            .join(Order, Order.store_id == Store.id)
            .where(Order.id == order_id)
        )
        telemetry.ORDER_LINES_UNKNOWN_SKU.inc_on_commit(
            session,
            str(platform or "unknown"),
            n=sum(1 for line in lines if line.sku in unknown and line.quantity > 0),
        )
    return changes, unknown
