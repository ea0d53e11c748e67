"""Fulfilment: an order's lines shipped with a carrier and tracking, told to its platform.

The merchant records a fulfilment (:func:`request_fulfilment`); the ``fulfil_order`` job on the
store's platform queue tells the platform (Shopify ``fulfillmentCreate``, Etsy
``createReceiptShipment``, Amazon ``confirmShipment``) and keeps its answer
(:func:`mark_shipped`), or its refusal with the platform's reason (:func:`mark_failed`). A
platform that ships its own orders (Printify) takes no such request: its shipments come back
with the order (webhook or pull) and are recorded once each (``fusion.orders.shipments``).

A line is never shipped past its quantity: what pending and shipped fulfilments hold of it
counts, a failed one does not. Requests for one order are serialised on the order's row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.audit.service import record
from fusion.auth.access import Access
from fusion.auth.models import Role
from fusion.errors import NotFound, ValidationFailed
from fusion.jobs.service import enqueue
from fusion.orders.lines import check_lines, order_lines
from fusion.orders.models import Fulfilment, FulfilmentStatus, Order
from fusion.orders.service import FULFIL_JOB
from fusion.orders.shipments import kept_answer
from fusion.plugins.base import Shipment, ShipmentAnswer, ShipmentLine
from fusion.plugins.registry import get_plugin
from fusion.stores.models import Store


@dataclass(frozen=True)
class LineRequest:
    """Units of one order line, as a request names them."""

    line_id: uuid.UUID
    quantity: int


def lock_order(session: Session, order_id: uuid.UUID) -> Order:
    """The order, row-locked until the transaction ends (one change of its lines at a time).
    Raises NotFound when it is not an order of the session's org."""
    order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound("No such order.")
    return order


def fulfilments_of(session: Session, order_id: uuid.UUID) -> list[Fulfilment]:
    """The order's fulfilments, oldest first."""
    return list(
        session.scalars(
            select(Fulfilment)
            .where(Fulfilment.order_id == order_id)
            .order_by(Fulfilment.created_at, Fulfilment.id)
        )
    )


def shipped_quantities(session: Session, order_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Per order line, the units its pending and shipped fulfilments hold."""
    counted: dict[uuid.UUID, int] = {}
    for fulfilment in fulfilments_of(session, order_id):
        if fulfilment.status is FulfilmentStatus.FAILED:
            continue
        for line in fulfilment.lines:
            key = uuid.UUID(str(line["line_id"]))
            counted[key] = counted.get(key, 0) + int(line["quantity"])
    return counted


def request_fulfilment(
    session: Session,
    access: Access,
    order_id: uuid.UUID,
    *,
    carrier: str,
    tracking_number: str,
    lines: Sequence[LineRequest],
    tracking_url: str | None = None,
    idempotency_key: str | None = None,
) -> Fulfilment:
    """Record a pending fulfilment of ``lines`` and enqueue the ``fulfil_order`` job that tells
    the order's platform, audited, in the caller's transaction. The same ``idempotency_key``
    returns the first fulfilment and records nothing new.

    Raises NotFound for an order not of this org; ValidationFailed naming the field for a
    platform that ships its own orders, a cancelled order, a line not of this order (or
    named twice, or without the platform's id), or a quantity past what is left unshipped
    of the line. Nothing is stored when it raises."""
    access.require(Role.OPERATOR)
    order = lock_order(session, order_id)
    if idempotency_key is not None:
        first = _by_key(session, idempotency_key)
        if first is not None:
            return first
    store = session.get(Store, order.store_id)
    platform = store.platform if store is not None else "unknown"
    if store is not None and get_plugin(platform).ships_own_orders:
        raise ValidationFailed(
            fields={
                "order": [
                    f"{platform} fulfils its own orders: its shipments are read back with the "
                    "order, not sent"
                ]
            }
        )
    if order.stock_restored_at is not None or order.status == "cancelled":
        raise ValidationFailed(fields={"order": ["The order is cancelled: nothing to ship."]})
    chosen = _check_lines(session, order_id, lines)
    fulfilment_id = uuid.uuid4()
    inserted = session.execute(
        pg_insert(Fulfilment)
        .values(
            id=fulfilment_id,
            org_id=order.org_id,
            order_id=order_id,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=tracking_url,
            lines=[{"line_id": str(r.line_id), "quantity": r.quantity} for r in chosen],
            idempotency_key=idempotency_key,
        )
        .on_conflict_do_nothing(index_elements=["org_id", "idempotency_key"])
        .returning(Fulfilment.id)
    ).scalar_one_or_none()
    if inserted is None and idempotency_key is not None:
        # The same key, committed meanwhile by a request for another order.
        return _by_key(session, idempotency_key)  # type: ignore[return-value]
    job = enqueue(
        session,
        org_id=order.org_id,
        job_type=FULFIL_JOB,
        store_id=order.store_id,
        payload={"fulfilment_id": str(fulfilment_id)},
        created_by=access.user_id,
    )
    session.execute(update(Fulfilment).where(Fulfilment.id == fulfilment_id).values(job_id=job.id))
    fulfilment = session.get(Fulfilment, fulfilment_id, populate_existing=True)
    assert fulfilment is not None  # inserted just now, in this transaction
    record(
        session,
        org_id=order.org_id,
        actor=access.principal,
        action="order.fulfil",
        resource_type="order",
        resource_id=order_id,
        after={
            "fulfilment_id": str(fulfilment_id),
            "carrier": carrier,
            "tracking_number": tracking_number,
            "lines": fulfilment.lines,
            "job_id": str(job.id),
        },
    )
    return fulfilment


def _by_key(session: Session, key: str) -> Fulfilment | None:
    return session.scalar(select(Fulfilment).where(Fulfilment.idempotency_key == key))


def _check_lines(
    session: Session, order_id: uuid.UUID, lines: Sequence[LineRequest]
) -> list[LineRequest]:
    check_lines(
        lines,
        order_lines(session, order_id),
        shipped_quantities(session, order_id),
        unusable=lambda line: (
            None
            if line.external_line_id
            else f"Line {line.sku} has no id on the platform: it cannot be shipped there."
        ),
        too_many=lambda line, left, asked: (
            f"Line {line.sku} ({line.id}) has {left} unshipped of {line.quantity}: "
            f"{asked} cannot be shipped."
        ),
    )
    return list(lines)


def pending_shipment(session: Session, fulfilment_id: uuid.UUID) -> Shipment | None:
    """What the job asks the platform for a fulfilment still pending; None for one shipped or
    failed already (a rerun, a duplicate job) or gone. Raises NotFound when it never was."""
    fulfilment = session.get(Fulfilment, fulfilment_id)
    if fulfilment is None:
        raise NotFound(f"fulfilment {fulfilment_id} does not exist")
    if fulfilment.status is not FulfilmentStatus.PENDING:
        return None
    order = session.get(Order, fulfilment.order_id)
    assert order is not None  # the foreign key cascades
    own = order_lines(session, order.id)
    before = _shipped_before(session, fulfilment)
    return Shipment(
        reference=str(fulfilment.id),
        order_external_id=order.external_id,
        carrier=fulfilment.carrier,
        tracking_number=fulfilment.tracking_number,
        tracking_url=fulfilment.tracking_url,
        lines=[
            ShipmentLine(
                external_line_id=str(own[key].external_line_id),
                sku=own[key].sku,
                quantity=int(line["quantity"]),
                shipped_before=before.get(key, 0),
            )
            for line in fulfilment.lines
            if (key := uuid.UUID(str(line["line_id"]))) in own
        ],
    )


def _shipped_before(session: Session, fulfilment: Fulfilment) -> dict[uuid.UUID, int]:
    """Per line, what the order's shipped fulfilments older than ``fulfilment`` hold."""
    counted: dict[uuid.UUID, int] = {}
    for other in fulfilments_of(session, fulfilment.order_id):
        if other.id == fulfilment.id or other.status is not FulfilmentStatus.SHIPPED:
            continue
        for line in other.lines:
            key = uuid.UUID(str(line["line_id"]))
            counted[key] = counted.get(key, 0) + int(line["quantity"])
    return counted


def mark_shipped(session: Session, fulfilment_id: uuid.UUID, answer: ShipmentAnswer) -> bool:
    """Keep the platform's answer on a pending fulfilment, now shipped; False (nothing
    changed) when it is no longer pending."""
    done = session.execute(
        update(Fulfilment)
        .where(Fulfilment.id == fulfilment_id, Fulfilment.status == FulfilmentStatus.PENDING)
        .values(
            status=FulfilmentStatus.SHIPPED,
            external_id=answer.external_id,
            platform_answer=kept_answer(answer.answer),
            shipped_at=func.now(),
            error=None,
        )
        .returning(Fulfilment.id)
    ).scalar_one_or_none()
    return done is not None


def mark_failed(session: Session, fulfilment_id: uuid.UUID, reason: str) -> bool:
    """A pending fulfilment refused by the platform, with its reason: failed, and its lines
    free to ship again; False when it is no longer pending."""
    done = session.execute(
        update(Fulfilment)
        .where(Fulfilment.id == fulfilment_id, Fulfilment.status == FulfilmentStatus.PENDING)
        .values(status=FulfilmentStatus.FAILED, error=reason[:2000])
        .returning(Fulfilment.id)
    ).scalar_one_or_none()
    return done is not None
