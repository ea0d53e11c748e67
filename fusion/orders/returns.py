"""Returns: units of single order lines that come back, and the stock they give back, once.

Two paths report them. A platform that reports refunds per line (Shopify's ``refunds/create``)
is applied by :func:`apply_refund`, keyed by the platform's refund line; where the platform
reports none (Etsy, Amazon), the merchant records the return through the API
(:func:`record_returns`), keyed by the request's Idempotency-Key. Either way each (order line,
key) is stored once (a unique key), so a redelivered refund or a repeated request gives
nothing more, and each unit that goes back into stock is a ``return`` movement of the ledger,
fanned out to the channels like any change of stock.

What comes back never exceeds what the order took: per SKU, the stock the order took
(``orders.stock_taken``) less what its returns gave back already. An order that took nothing
(history, first seen cancelled) or was cancelled (the cancellation gave back what was left)
gives nothing back; the return is still recorded, with ``restocked`` 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.audit.service import record
from fusion.auth.access import Access
from fusion.auth.models import Role
from fusion.catalog.models import ProductVariant
from fusion.errors import NotFound, RetryableError
from fusion.inventory.ledger import SYSTEM_ACTOR, actor_of, move
from fusion.inventory.models import MovementKind
from fusion.inventory.service import fan_out_stock
from fusion.orders.lines import check_lines, order_lines
from fusion.orders.models import Order, OrderLine, OrderReturn
from fusion.plugins.base import RemoteRefund

MAX_REASON = 2000


@dataclass(frozen=True)
class ReturnRequest:
    """Units of one order line the merchant says came back."""

    line_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class Returned:
    """What a call recorded (for a repeated request: what the first one did), and the stock
    this call gave back per SKU (empty for a repeat)."""

    order_id: uuid.UUID
    returns: list[OrderReturn]
    restocked: dict[str, int] = field(default_factory=dict)

    @property
    def changed_skus(self) -> list[str]:
        return sorted(sku for sku, n in self.restocked.items() if n > 0)


@dataclass(frozen=True)
class _Item:
    line: OrderLine
    quantity: int
    key: str
    restock: bool = True


def returns_of(session: Session, order_id: uuid.UUID) -> list[OrderReturn]:
    """The order's returns, oldest first."""
    return list(
        session.scalars(
            select(OrderReturn)
            .where(OrderReturn.order_id == order_id)
            .order_by(OrderReturn.created_at, OrderReturn.id)
        )
    )


def restocked_by_sku(session: Session, order_id: uuid.UUID) -> dict[str, int]:
    """Per SKU, the stock the order's returns gave back so far."""
    rows = session.execute(
        select(OrderLine.sku, func.sum(OrderReturn.restocked))
        .join(OrderLine, OrderLine.id == OrderReturn.order_line_id)
        .where(OrderReturn.order_id == order_id)
        .group_by(OrderLine.sku)
    )
    return {str(sku): int(total or 0) for sku, total in rows}


def record_returns(
    session: Session,
    access: Access,
    order_id: uuid.UUID,
    *,
    lines: Sequence[ReturnRequest],
    reason: str = "",
    idempotency_key: str | None = None,
) -> Returned:
    """Record the merchant's return of ``lines`` and give back their stock once (see the
    module), audited, in the caller's transaction. The same ``idempotency_key`` answers what
    the first request recorded and changes nothing.

    Raises NotFound for an order not of this org; ValidationFailed naming the field for a
    line not of this order (or named twice) or a quantity past what is left unreturned of
    the line. Nothing is stored when it raises."""
    access.require(Role.OPERATOR)
    order = _lock(session, order_id)
    key = idempotency_key or uuid.uuid4().hex
    first = [r for r in returns_of(session, order_id) if r.source_key.startswith(f"return:{key}:")]
    if first:
        return Returned(order_id, first)
    own = order_lines(session, order_id)
    check_lines(
        lines,
        own,
        _returned_by_line(session, order_id),
        too_many=lambda line, left, asked: (
            f"Line {line.sku} ({line.id}) has {left} of {line.quantity} not yet returned: "
            f"{asked} cannot be returned."
        ),
    )
    why = reason.strip()[:MAX_REASON] or "returned"
    items = [_Item(own[r.line_id], r.quantity, f"return:{key}:{r.line_id}") for r in lines]
    result = _give_back(
        session, order, items, why=why, actor=actor_of(access.principal), job_id=None
    )
    fan_out_stock(session, org_id=order.org_id, skus=result.changed_skus)
    record(
        session,
        org_id=order.org_id,
        actor=access.principal,
        action="order.return",
        resource_type="order",
        resource_id=order_id,
        after={
            "reason": why,
            "lines": [{"line_id": str(r.line_id), "quantity": r.quantity} for r in lines],
            "restocked": result.restocked,
        },
    )
    return result


def apply_refund(
    session: Session,
    *,
    store_id: uuid.UUID,
    refund: RemoteRefund,
    job_id: uuid.UUID | None,
) -> Returned:
    """Apply a refund of single lines the platform reported: each refund line once (by its
    key), its units back into stock when the platform restocks them (see the module). Lines
    the hub does not hold are skipped. In the caller's transaction. Raises RetryableError
    when the order is not stored yet (its webhook or the pull brings it soon)."""
    order_id = session.scalar(
        select(Order.id).where(
            Order.store_id == store_id, Order.external_id == refund.order_external_id
        )
    )
    if order_id is None:
        raise RetryableError(f"order {refund.order_external_id} is not stored yet")
    order = _lock(session, order_id)
    by_platform_id = {
        line.external_line_id: line for line in order_lines(session, order_id).values()
    }
    items = [
        _Item(by_platform_id[r.external_line_id], r.quantity, r.key, r.restock)
        for r in refund.lines
        if r.external_line_id in by_platform_id and r.quantity > 0
    ]
    return _give_back(session, order, items, why="refunded", actor=SYSTEM_ACTOR, job_id=job_id)


def _lock(session: Session, order_id: uuid.UUID) -> Order:
    order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound("No such order.")
    return order


def _returned_by_line(session: Session, order_id: uuid.UUID) -> dict[uuid.UUID, int]:
    return {
        line_id: int(total or 0)
        for line_id, total in session.execute(
            select(OrderReturn.order_line_id, func.sum(OrderReturn.quantity))
            .where(OrderReturn.order_id == order_id)
            .group_by(OrderReturn.order_line_id)
        )
    }


def _give_back(
    session: Session,
    order: Order,
    items: Sequence[_Item],
    *,
    why: str,
    actor: str,
    job_id: uuid.UUID | None,
) -> Returned:
    """Store each item once per (line, key) and move what it gives back into stock. The
    order's row is locked by the caller, so the counts read here stay true until commit."""
    took_stock = (
        not order.history and order.stock_applied_at is not None and order.stock_restored_at is None
    )
    left = {str(sku): int(n) for sku, n in (order.stock_taken or {}).items()}
    for sku, given in restocked_by_sku(session, order.id).items():
        left[sku] = left.get(sku, 0) - given
    returned = _returned_by_line(session, order.id)
    made: list[OrderReturn] = []
    restocked: dict[str, int] = {}
    for item in items:
        line = item.line
        quantity = min(item.quantity, line.quantity - returned.get(line.id, 0))
        if quantity <= 0:
            continue
        variant = session.scalar(select(ProductVariant).where(ProductVariant.sku == line.sku))
        back = 0
        if took_stock and item.restock and variant is not None:
            back = max(0, min(quantity, left.get(line.sku, 0)))
        return_id = session.execute(
            pg_insert(OrderReturn)
            .values(
                id=uuid.uuid4(),
                org_id=order.org_id,
                order_id=order.id,
                order_line_id=line.id,
                source_key=item.key[:400],
                quantity=quantity,
                restocked=back,
                reason=why if item.restock else f"{why} (not restocked)",
                job_id=job_id,
            )
            .on_conflict_do_nothing(index_elements=["order_line_id", "source_key"])
            .returning(OrderReturn.id)
        ).scalar_one_or_none()
        if return_id is None:
            continue  # reported before: it gave back what it gave back then
        returned[line.id] = returned.get(line.id, 0) + quantity
        if back > 0 and variant is not None:
            left[line.sku] = left.get(line.sku, 0) - back
            move(
                session,
                variant=variant,
                kind=MovementKind.RETURN,
                actor=actor,
                reason=f"order {order.external_id}: {back} of {line.sku} {why}",
                delta=back,
                order_id=order.id,
                job_id=job_id,
            )
            restocked[line.sku] = restocked.get(line.sku, 0) + back
        row = session.get(OrderReturn, return_id)
        assert row is not None  # inserted just now, in this transaction
        made.append(row)
    return Returned(order.id, made, restocked)
