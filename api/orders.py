"""Orders ingested from the stores: read, shipped (a fulfilment told to the platform) and
returned (lines whose stock comes back)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.auth.models import Role
from fusion.orders import fulfilment, returns
from fusion.orders import service as orders
from fusion.orders.models import Fulfilment, Order
from fusion.stores.models import Store
from schemas.job_views import IdempotencyHeaderSchema
from schemas.orders import (
    FulfilmentCreateSchema,
    FulfilmentSchema,
    OrderDetailSchema,
    OrderPageSchema,
    OrderQuerySchema,
    OrderSchema,
    ReturnCreateSchema,
    ReturnResultSchema,
)

blp = Blueprint("orders", __name__, url_prefix="/orgs", description="Orders.")


@blp.get("/<uuid:org_id>/orders")
@blp.arguments(OrderQuerySchema, location="query")
@blp.response(200, OrderPageSchema)
@org_scope(Role.VIEWER)
def list_orders(query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
    """Orders, newest first, filtered by store or status."""
    filters = {k: query[k] for k in ("store_id", "status")}
    return page(
        tx(),
        Order,
        limit=query["limit"],
        cursor=query["cursor"],
        filters=filters,
        references={"store_id": Store},
    )


@blp.get("/<uuid:org_id>/orders/<uuid:order_id>")
@blp.response(200, OrderDetailSchema)
@org_scope(Role.VIEWER)
def get_order(org_id: uuid.UUID, order_id: uuid.UUID) -> dict[str, Any]:
    """One order with its lines, the job (and webhook delivery) that first stored it, its
    fulfilments (status, carrier, tracking, the platform's answer or refusal) and returns."""
    session = tx()
    order, lines = orders.get_order(session, order_id)
    links = {"job_id": order.job_id, "webhook_delivery_id": order.webhook_delivery_id}
    shown = {name: getattr(order, name) for name in OrderSchema().fields}
    after = {
        "fulfilments": fulfilment.fulfilments_of(session, order_id),
        "returns": returns.returns_of(session, order_id),
    }
    return {**shown, "lines": lines, **links, **after}


@blp.post("/<uuid:org_id>/orders/<uuid:order_id>/fulfilments")
@blp.arguments(FulfilmentCreateSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.response(202, FulfilmentSchema)
@org_scope(Role.OPERATOR)
def fulfil_order(
    body: dict[str, Any], org_id: uuid.UUID, order_id: uuid.UUID, idempotency_key: str | None = None
) -> Fulfilment:
    """Mark lines of the order shipped on its platform with carrier and tracking: 202 with
    the pending fulfilment, whose job tells the platform. 422 naming the line for a line not
    of the order or more than is unshipped, and for Printify (it ships its own orders: its
    shipments are read back). The same Idempotency-Key returns the first fulfilment."""
    lines = [fulfilment.LineRequest(**line) for line in body.pop("lines")]
    return fulfilment.request_fulfilment(
        tx(), access(), order_id, lines=lines, idempotency_key=idempotency_key, **body
    )


@blp.post("/<uuid:org_id>/orders/<uuid:order_id>/returns")
@blp.arguments(ReturnCreateSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
@blp.response(201, ReturnResultSchema)
@org_scope(Role.OPERATOR)
def return_lines(
    body: dict[str, Any], org_id: uuid.UUID, order_id: uuid.UUID, idempotency_key: str | None = None
) -> returns.Returned:
    """Record lines that came back (for platforms that report no refund per line): each
    line's stock goes back once, as a return movement, and is pushed to the channels. 422
    naming the line for a line not of the order or more than is left unreturned. The same
    Idempotency-Key answers the first request's returns and gives nothing more."""
    lines = [returns.ReturnRequest(**line) for line in body["lines"]]
    return returns.record_returns(
        tx(),
        access(),
        order_id,
        lines=lines,
        reason=body["reason"],
        idempotency_key=idempotency_key,
    )
