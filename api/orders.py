"""Orders ingested from the stores (read only)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.pagination import page
from api.security import org_scope, tx
from fusion.auth.models import Role
from fusion.orders import service as orders
from fusion.orders.models import Order
from fusion.stores.models import Store
from schemas.orders import OrderDetailSchema, OrderPageSchema, OrderQuerySchema, OrderSchema

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
    """One order with its lines, and the job (and webhook delivery) that first stored it."""
    order, lines = orders.get_order(tx(), order_id)
    links = {"job_id": order.job_id, "webhook_delivery_id": order.webhook_delivery_id}
    shown = {name: getattr(order, name) for name in OrderSchema().fields}
    return {**shown, "lines": lines, **links}
