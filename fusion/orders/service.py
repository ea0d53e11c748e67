"""Reading orders (ingestion and stock effects live with the order pipeline)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.errors import NotFound
from fusion.orders.models import Order, OrderLine


def get_order(session: Session, order_id: uuid.UUID) -> tuple[Order, list[OrderLine]]:
    """The order and its lines, in the session's org. Raises NotFound otherwise."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound("No such order.")
    lines = session.scalars(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.created_at)
    ).all()
    return order, list(lines)
