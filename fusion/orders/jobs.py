"""The orders' jobs: ``reconcile_orders``, the periodic pull behind the order webhooks (which
get lost). Every order is stored once per (store, external id) and takes its stock once,
whether the pull or a webhook sees it first (``fusion.orders.service.ingest_order``).
``fulfil_order`` tells the order's platform that some of its lines shipped
(``fusion.orders.fulfilment``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fusion.errors import PermanentError, RetryableError
from fusion.inventory.service import fan_out_stock
from fusion.jobs.context import JobContext
from fusion.jobs.registry import Admitted, job_type
from fusion.orders import fulfilment
from fusion.orders.service import FULFIL_JOB, RECONCILE_JOB, ingest_order
from fusion.plugins.base import Capability
from fusion.stores.client import store_client
from fusion.stores.models import Store

RECONCILE_OVERLAP = timedelta(minutes=5)  # orders updated around the last pull are re-read
# The first pull reaches back this far; what it finds from before the store was connected is
# stored as history and takes no stock (``ingest_order``).
RECONCILE_FIRST_WINDOW = timedelta(days=7)
RECONCILED_AT = "orders_reconciled_at"  # in stores.state: when the last pull started


def admit_reconcile(
    session: Session, store_id: uuid.UUID | None, payload: dict[str, Any]
) -> Admitted:
    """A client's ``since`` never reaches back before the store was connected: it is
    clamped to the connection time (and the job's log says so). The hub's own first pull
    reaches back further, but what it finds from then is history and takes no stock; a
    client has no business pulling the store's whole past. A payload without ``since``, or
    a store not of this org (the enqueue refuses it), is left as it is."""
    store = session.get(Store, store_id) if store_id is not None else None
    if store is None or "since" not in payload:
        return Admitted(payload)
    asked = datetime.fromisoformat(str(payload["since"]))
    if asked >= store.created_at:
        return Admitted(payload)
    connected = store.created_at.isoformat()
    return Admitted(
        {**payload, "since": connected},
        (f"since {asked.isoformat()} is before the store was connected: clamped to {connected}",),
    )


@job_type(RECONCILE_JOB, capability=Capability.ORDER_WEBHOOKS, admit=admit_reconcile)
def reconcile_orders(ctx: JobContext) -> dict[str, Any]:
    """Pull orders changed since the last pull (with an overlap), or since the payload's
    ``since`` but never before the store was connected: each is stored once and takes its
    stock once; the changed SKUs then fan out to the org's other real-time stores."""
    store_id = ctx.require_store()
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is None:
            raise PermanentError(f"store {store_id} no longer exists")
        last = (store.state or {}).get(RECONCILED_AT)
        connected = store.created_at
    started = datetime.now(UTC)
    since = (
        datetime.fromisoformat(last) - RECONCILE_OVERLAP
        if last
        else started - RECONCILE_FIRST_WINDOW
    )
    if "since" in ctx.payload:
        since = datetime.fromisoformat(str(ctx.payload["since"]))
        if since < connected:  # a payload the jobs API did not clamp (an older job)
            ctx.log(
                f"since {since.isoformat()} is before the store was connected: "
                f"pulling from {connected.isoformat()}",
                "warning",
            )
            since = connected
    with store_client(ctx, Capability.ORDER_WEBHOOKS) as bound:
        orders = bound.client.fetch_orders(since)
    new = 0
    changed: set[str] = set()
    cancelled = 0
    ctx.progress(0, len(orders))
    with ctx.session() as session:
        for done, order in enumerate(orders, 1):
            ingested = ingest_order(
                session, org_id=ctx.org_id, store_id=store_id, order=order, job_id=ctx.job_id
            )
            new += int(ingested.created)
            changed.update(ingested.changed_skus)
            cancelled += int(bool(ingested.restored))
            ctx.progress(done, len(orders))  # written at most once a second, and the last
        fanned = fan_out_stock(session, org_id=ctx.org_id, skus=sorted(changed))
        store = session.get(Store, store_id)
        if store is not None:
            store.state = {**(store.state or {}), RECONCILED_AT: started.isoformat()}
    ctx.log(
        f"reconciled {len(orders)} orders, {new} new, {cancelled} cancelled (stock given "
        f"back); stock changed for {len(changed)} SKUs, {len(fanned)} stores to update",
        "info",
        seen=len(orders),
        new=new,
        cancelled=cancelled,
    )
    return {
        "seen": len(orders),
        "new": new,
        "cancelled": cancelled,
        "fan_out_jobs": len(fanned),
    }


@job_type(
    FULFIL_JOB,
    internal="POST /orgs/{org}/orders/{order}/fulfilments records the fulfilment and enqueues "
    "its job",
)
def fulfil_order(ctx: JobContext) -> dict[str, Any]:
    """Tell the store's platform that the fulfilment's lines shipped, with its carrier and
    tracking, and keep the platform's answer on the fulfilment (shipped). A fulfilment no
    longer pending (a rerun, a duplicate message) is left alone, and the platform itself is
    asked whether it holds the shipment already before one is made (``ship_order``), so a
    retry after a lost answer never ships twice. A refusal (PermanentError) leaves the
    fulfilment failed with the platform's reason, as does a transient failure on the last
    attempt; otherwise transient failures retry on the ladder."""
    fulfilment_id = ctx.payload_uuid("fulfilment_id")
    with ctx.session() as session:
        shipment = fulfilment.pending_shipment(session, fulfilment_id)
    if shipment is None:
        return {"fulfilment_id": str(fulfilment_id), "already_done": True}
    try:
        with store_client(ctx) as bound:
            answer = bound.client.ship_order(shipment)
    except (PermanentError, RetryableError) as exc:
        if isinstance(exc, PermanentError) or ctx.last_attempt:
            with ctx.session() as session:
                fulfilment.mark_failed(session, fulfilment_id, str(exc))
            ctx.log(f"the platform did not take the fulfilment: {exc}", "error")
        raise
    with ctx.session() as session:
        fulfilment.mark_shipped(session, fulfilment_id, answer)
    ctx.log(
        f"order {shipment.order_external_id}: {sum(li.quantity for li in shipment.lines)} "
        f"units shipped with {shipment.carrier} {shipment.tracking_number}"
        + (" (the platform held the shipment already)" if answer.already else ""),
        "info",
        external_id=answer.external_id,
    )
    return {
        "fulfilment_id": str(fulfilment_id),
        "external_id": answer.external_id,
        "already_on_platform": answer.already,
    }
