"""The orders' job: ``reconcile_orders``, the periodic pull behind the order webhooks (which
get lost). Every order is stored once per (store, external id) and takes its stock once,
whether the pull or a webhook sees it first (``fusion.orders.service.ingest_order``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fusion.errors import PermanentError
from fusion.inventory.service import fan_out_stock
from fusion.jobs.context import JobContext
from fusion.jobs.registry import job_type
from fusion.orders.service import RECONCILE_JOB, ingest_order
from fusion.plugins.base import Capability
from fusion.stores.client import store_client
from fusion.stores.models import Store

RECONCILE_OVERLAP = timedelta(minutes=5)  # orders updated around the last pull are re-read
# The first pull reaches back this far; what it finds from before the store was connected is
# stored as history and takes no stock (``ingest_order``).
RECONCILE_FIRST_WINDOW = timedelta(days=7)
RECONCILED_AT = "orders_reconciled_at"  # in stores.state: when the last pull started


@job_type(RECONCILE_JOB, capability=Capability.ORDER_WEBHOOKS)
def reconcile_orders(ctx: JobContext) -> dict[str, Any]:
    """Pull orders changed since the last pull (with an overlap): each is stored once and
    takes its stock once; the changed SKUs then fan out to the org's other real-time
    stores."""
    store_id = ctx.require_store()
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is None:
            raise PermanentError(f"store {store_id} no longer exists")
        last = (store.state or {}).get(RECONCILED_AT)
    started = datetime.now(UTC)
    since = (
        datetime.fromisoformat(last) - RECONCILE_OVERLAP
        if last
        else started - RECONCILE_FIRST_WINDOW
    )
    if "since" in ctx.payload:
        since = datetime.fromisoformat(str(ctx.payload["since"]))
    with store_client(ctx, Capability.ORDER_WEBHOOKS) as bound:
        orders = bound.client.fetch_orders(since)
    new = 0
    changed: set[str] = set()
    cancelled = 0
    with ctx.session() as session:
        for order in orders:
            ingested = ingest_order(
                session, org_id=ctx.org_id, store_id=store_id, order=order, job_id=ctx.job_id
            )
            new += int(ingested.created)
            changed.update(ingested.changed_skus)
            cancelled += int(bool(ingested.restored))
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
