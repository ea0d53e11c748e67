"""Shipments a platform made of an order itself (Printify prints and ships its orders), read
back with the order by its webhook or the reconciliation pull, and kept as shipped fulfilments
once per platform id (``fusion.orders.fulfilment`` holds the ones the hub sends)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.orders.models import Fulfilment, FulfilmentSource, FulfilmentStatus, Order, OrderLine
from fusion.plugins.base import RemoteShipment

MAX_ANSWER_CHARS = 20_000  # a platform's answer is kept whole up to this size


def record_platform_shipments(
    session: Session, order_id: uuid.UUID, shipments: Sequence[RemoteShipment]
) -> int:
    """Each shipment a platform made of the order itself, once per platform id, as a shipped
    fulfilment of all the order's lines; returns how many were new. In the caller's
    transaction."""
    if not shipments:
        return 0
    org_id = session.scalar(select(Order.org_id).where(Order.id == order_id))
    lines = [
        {"line_id": str(line_id), "quantity": quantity}
        for line_id, quantity in session.execute(
            select(OrderLine.id, OrderLine.quantity)
            .where(OrderLine.order_id == order_id)
            .order_by(OrderLine.created_at, OrderLine.id)
        )
    ]
    new = 0
    for shipment in shipments:
        inserted = session.execute(
            pg_insert(Fulfilment)
            .values(
                id=uuid.uuid4(),
                org_id=org_id,
                order_id=order_id,
                status=FulfilmentStatus.SHIPPED,
                source=FulfilmentSource.PLATFORM,
                carrier=shipment.carrier[:100],
                tracking_number=shipment.tracking_number[:200],
                tracking_url=shipment.tracking_url[:2000] if shipment.tracking_url else None,
                lines=lines,
                external_id=shipment.external_id[:255],
                platform_answer=kept_answer(shipment.raw),
                shipped_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["order_id", "external_id"])
            .returning(Fulfilment.id)
        ).scalar_one_or_none()
        new += inserted is not None
    return new


def kept_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The platform's answer as it was, unless it is absurdly large (then cut, and said so)."""
    plain = dict(answer)
    if len(repr(plain)) <= MAX_ANSWER_CHARS:
        return plain
    return {"truncated": True, "text": repr(plain)[:MAX_ANSWER_CHARS]}
