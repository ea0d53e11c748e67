"""The ``process_webhook`` job: turn a stored delivery into an order, its stock effect and
the stock pushes to the org's other stores. Imported by workers at start
(``fusion.jobs.registry.BUILTIN_MODULES``).

Safe to run twice: the delivery is locked and re-read, a processed one is left alone, and
the order's stock is applied only by the transaction that first sets ``stock_applied_at``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import fusion.db.models  # noqa: F401  (every table, so foreign keys resolve in a worker)
from fusion.errors import PermanentError
from fusion.jobs.registry import JobType, register
from fusion.orders.service import fan_out_stock, ingest_order
from fusion.plugins.base import WebhookEvent
from fusion.plugins.registry import get_plugin
from fusion.webhooks.models import WebhookDelivery
from fusion.webhooks.service import PROCESS_JOB

if TYPE_CHECKING:
    from fusion.jobs.context import JobContext


def process_webhook(ctx: JobContext) -> dict[str, Any]:
    """Ingest the order a delivery carries (once), take its stock (once, clamped at 0 with a
    warning per clamped SKU) and enqueue the real-time pushes; mark the delivery processed.
    Raises PermanentError for a missing delivery or an order payload the plugin rejects."""
    try:
        webhook_id = uuid.UUID(str(ctx.payload["webhook_id"]))
    except (KeyError, ValueError):
        raise PermanentError("the payload needs webhook_id (a UUID)") from None
    with ctx.session() as session:
        delivery = session.get(WebhookDelivery, webhook_id, with_for_update=True)
        if delivery is None:
            raise PermanentError(f"webhook delivery {webhook_id} does not exist")
        if delivery.status == "processed":
            return {"webhook_id": str(webhook_id), "already_processed": True}
        event = WebhookEvent(delivery.delivery_id, delivery.topic, delivery.payload)
        order = get_plugin(delivery.platform).order_from_event(event)
        if order is None:
            delivery.status = "ignored"
            return {"webhook_id": str(webhook_id), "order": None}
        ingested = ingest_order(session, org_id=ctx.org_id, store_id=delivery.store_id, order=order)
        jobs = fan_out_stock(
            session,
            org_id=ctx.org_id,
            source_store_id=delivery.store_id,
            skus=[change.sku for change in ingested.stock],
        )
        delivery.status = "processed"
    # Logged after the commit: the log says what the committed transaction did.
    for change in ingested.stock:
        if change.clamped:
            ctx.log(
                f"{change.sku}: order asked for {change.ordered}, the hub held {change.taken}; "
                "stock stopped at 0",
                "warning",
                sku=change.sku,
                ordered=change.ordered,
                taken=change.taken,
            )
    if ingested.unknown_skus:
        ctx.log(
            f"{len(ingested.unknown_skus)} ordered SKUs are not in the catalog",
            "warning",
            skus=ingested.unknown_skus[:50],
        )
    ctx.log(
        f"order {order.external_id}: {'stored' if ingested.created else 'already stored'}, "
        f"stock {'applied' if ingested.stock_applied else 'unchanged'}, "
        f"{len(jobs)} real-time pushes enqueued",
        "info",
        order_id=str(ingested.order_id),
        pushes=[str(j.id) for j in jobs],
    )
    return {
        "webhook_id": str(webhook_id),
        "order_id": str(ingested.order_id),
        "created": ingested.created,
        "stock_applied": ingested.stock_applied,
        "pushes": len(jobs),
    }


register(
    JobType(PROCESS_JOB, process_webhook, needs_store=False, payload_schema="webhook_jobs.process")
)
