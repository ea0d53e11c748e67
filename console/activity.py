"""Orders (by store, with their lines and the stock they took and gave back, linked to the job
and the webhook delivery that brought them), a webhook delivery, and the audit log (owners,
with the chain check)."""

from __future__ import annotations

import uuid

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.pagination import page as keyset
from console import forms
from console.scope import back, bp, page, tx
from fusion.audit.models import AuditLog
from fusion.audit.service import verify
from fusion.auth.models import Role
from fusion.orders import service as orders
from fusion.orders.models import Order, OrderLine
from fusion.stores.models import Store
from fusion.webhooks import service as webhooks


@bp.get("/orgs/<uuid:org_id>/orders")
@page(Role.VIEWER)
def orders_page(org_id: uuid.UUID) -> str:
    found = keyset(
        tx(),
        Order,
        limit=forms.PAGE_SIZE,
        cursor=forms.cursor(),
        filters={"store_id": forms.an_id("store"), "status": request.args.get("status") or None},
        references={"store_id": Store},
    )
    ids = [order.id for order in found["items"]]
    lines: dict[uuid.UUID, list[OrderLine]] = {}
    for line in tx().scalars(
        select(OrderLine).where(OrderLine.order_id.in_(ids)).order_by(OrderLine.sku)
    ):
        lines.setdefault(line.order_id, []).append(line)
    return render_template(
        "console/orders.html",
        found=found,
        lines=lines,
        stores={s.id: s for s in tx().scalars(select(Store).order_by(Store.name))},
        more=forms.query_without("cursor"),
    )


@bp.get("/orgs/<uuid:org_id>/orders/<uuid:order_id>")
@page(Role.VIEWER)
def order_page(org_id: uuid.UUID, order_id: uuid.UUID) -> str:
    order, lines = orders.get_order(tx(), order_id)
    return render_template(
        "console/order.html", order=order, lines=lines, store=tx().get(Store, order.store_id)
    )


@bp.get("/orgs/<uuid:org_id>/webhook-deliveries/<uuid:delivery_id>")
@page(Role.VIEWER)
def delivery_page(org_id: uuid.UUID, delivery_id: uuid.UUID) -> str:
    """``GET /orgs/{org}/webhook-deliveries/{id}``: what the platform sent and what became of
    it, with the orders it brought."""
    delivery = webhooks.get_delivery(tx(), delivery_id)
    brought = tx().scalars(
        select(Order).where(Order.webhook_delivery_id == delivery.id).order_by(Order.created_at)
    )
    return render_template(
        "console/delivery.html",
        delivery=delivery,
        orders=list(brought),
        store=tx().get(Store, delivery.store_id),
    )


@bp.get("/orgs/<uuid:org_id>/audit")
@page(Role.OWNER)
def audit_page(org_id: uuid.UUID) -> str:
    filters = {
        "action": request.args.get("action") or None,
        "resource_type": request.args.get("resource_type") or None,
        "resource_id": forms.an_id("resource_id"),
    }
    found = keyset(
        tx(),
        AuditLog,
        limit=forms.PAGE_SIZE,
        cursor=forms.cursor(),
        filters=filters,
        stmt=select(AuditLog),
    )
    return render_template("console/audit.html", found=found, more=forms.query_without("cursor"))


@bp.post("/orgs/<uuid:org_id>/audit/verify")
@page(Role.OWNER)
def verify_chain(org_id: uuid.UUID) -> Response:
    broken = verify(tx(), org_id)
    if broken is None:
        flash("The audit chain holds: no entry was changed or removed.", "ok")
    else:
        flash(f"The audit chain breaks at entry {broken}.", "error")
    return back("console.audit_page", org_id=org_id)
