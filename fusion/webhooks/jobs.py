"""The jobs behind order events. Imported by workers at start
(``boot.start``).

- ``process_webhook`` turns a stored delivery into an order, its stock effect and the stock
  pushes to the org's other stores. An event that only names its order (Printify's, Amazon's
  without prices) is first completed from the platform's API, outside any transaction, and
  the delivery keeps the completed payload. Safe to run twice: the delivery is locked and
  re-read, a processed one is left alone, and the order's stock is applied only by the
  transaction that first sets ``stock_applied_at``. An event that names its lines but not
  their prices (Amazon's notification) takes its stock at once and leaves the prices to
  ``price_order``, which waits on the platform's rate limit without holding anything up.
- ``subscribe_order_events`` asks the store's platform to deliver its order events to this
  hub (enqueued when a store is connected and the hub has a public URL).
- ``consume_order_queue`` listens on a store's order notification queue (Amazon's SQS) for a
  bounded window, then enqueues its own successor, so one listener per store reads the queue
  without pause (beat starts one for a store that has none). It stores each notification
  exactly as a verified webhook delivery, enqueueing ``process_webhook`` in the same
  transaction. A message leaves the queue only after that transaction committed, so a crash
  means a redelivery, which the delivery's unique id turns into a no-op.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from fusion.errors import PermanentError
from fusion.inventory.service import fan_out_stock
from fusion.jobs.context import JobContext
from fusion.jobs.models import Job
from fusion.jobs.registry import job_type
from fusion.jobs.service import enqueue
from fusion.orders.returns import Returned, apply_refund
from fusion.orders.service import Ingested, add_prices, ingest_order
from fusion.plugins.base import Capability, RemoteRefund, WebhookEvent
from fusion.plugins.registry import get_plugin
from fusion.stores.client import store_client, webhook_secret
from fusion.stores.models import Store, StoreStatus
from fusion.webhooks.models import DeliveryStatus, WebhookDelivery
from fusion.webhooks.service import (
    CONSUME_JOB,
    PRICE_JOB,
    PROCESS_JOB,
    SUBSCRIBE_JOB,
    WebhookRefused,
    order_queue_stores,
    receiver_url,
    record,
)


@job_type(
    PROCESS_JOB,
    needs_store=False,
    internal="the webhook receiver enqueues it for each verified delivery",
)
def process_webhook(ctx: JobContext) -> dict[str, Any]:
    """Ingest the order a delivery carries (once), take its stock (once, clamped at 0 with a
    warning per clamped SKU) and enqueue the real-time pushes; mark the delivery processed.
    A refund of single lines (Shopify's ``refunds/create``) gives back those lines' stock once
    instead (``fusion.orders.returns.apply_refund``), retried while its order is not stored.
    Raises PermanentError for a missing delivery or an order payload the plugin rejects."""
    webhook_id = ctx.payload_uuid("webhook_id")
    with ctx.session() as session:
        delivery = _delivery(session, webhook_id)
        if delivery.status == DeliveryStatus.PROCESSED:
            return {"webhook_id": str(webhook_id), "already_processed": True}
        event = WebhookEvent(delivery.delivery_id, delivery.topic, delivery.payload)
        plugin, store_id = get_plugin(delivery.platform), delivery.store_id
    prices_later = plugin.needs_lookup(event) and plugin.stock_before_lookup(event)
    if plugin.needs_lookup(event) and not prices_later:
        # What the event lacks is read from the platform, outside any transaction. Never
        # waiting inline for the store's rate limit: short of tokens, the job is rescheduled
        # for when they are due (attempt not counted) and the worker slot runs other jobs.
        # Nothing is written before the lookup, so the re-run starts clean.
        with store_client(ctx, store_id=store_id, max_inline_wait_s=0) as bound:
            event = bound.client.complete_event(event)
    with ctx.session() as session:
        delivery = _delivery(session, webhook_id)
        if delivery.status == DeliveryStatus.PROCESSED:
            return {"webhook_id": str(webhook_id), "already_processed": True}
        delivery.payload = dict(event.payload)
        order = plugin.order_from_event(event)
        refund = plugin.refund_from_event(event) if order is None else None
        if refund is not None:
            returned = apply_refund(
                session, store_id=delivery.store_id, refund=refund, job_id=ctx.job_id
            )
            pushes = fan_out_stock(session, org_id=ctx.org_id, skus=returned.changed_skus)
            delivery.status = DeliveryStatus.PROCESSED
            return _refunded(ctx, webhook_id, refund, returned, len(pushes))
        if order is None:
            delivery.status = DeliveryStatus.IGNORED
            return {"webhook_id": str(webhook_id), "order": None}
        ingested = ingest_order(
            session,
            org_id=ctx.org_id,
            store_id=delivery.store_id,
            order=order,
            job_id=ctx.job_id,
            webhook_delivery_id=webhook_id,
        )
        jobs = fan_out_stock(session, org_id=ctx.org_id, skus=ingested.changed_skus)
        if prices_later and ingested.created:
            # Behind the stock pushes on the platform's queue: prices can wait, stock cannot.
            enqueue(
                session,
                org_id=ctx.org_id,
                job_type=PRICE_JOB,
                store_id=delivery.store_id,
                payload={"webhook_id": str(webhook_id), "order_id": str(ingested.order_id)},
                priority=-1,
            )
        delivery.status = DeliveryStatus.PROCESSED
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
        f"stock {_effect(ingested)}, "
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
        "stock_restored": bool(ingested.restored),
        "pushes": len(jobs),
    }


@job_type(
    PRICE_JOB,
    needs_store=False,
    internal="process_webhook enqueues it for an order whose notification took its stock "
    "before the platform was asked for the prices",
)
def price_order(ctx: JobContext) -> dict[str, Any]:
    """Read the prices of an order its delivery stored without them (the platform's lookup,
    rescheduled rather than waited for when the store's rate limit is short) and add them to
    the stored order and its delivery. Stock is not touched. Safe to run twice: a delivery
    already completed is left alone. Raises PermanentError for a missing delivery."""
    webhook_id, order_id = ctx.payload_uuid("webhook_id"), ctx.payload_uuid("order_id")
    with ctx.session() as session:
        delivery = _delivery(session, webhook_id)
        event = WebhookEvent(delivery.delivery_id, delivery.topic, delivery.payload)
        plugin, store_id = get_plugin(delivery.platform), delivery.store_id
    if not plugin.needs_lookup(event):
        return {"order_id": str(order_id), "already_priced": True}
    with store_client(ctx, store_id=store_id, max_inline_wait_s=0) as bound:
        event = bound.client.complete_event(event)
    if plugin.needs_lookup(event):  # the platform would not show the order (logged there)
        ctx.log("the platform did not show the order: it keeps no prices", "warning")
        return {"order_id": str(order_id), "priced": 0}
    order = plugin.order_from_event(event)
    if order is None:
        raise PermanentError(f"webhook delivery {webhook_id} carries no order")
    with ctx.session() as session:
        delivery = _delivery(session, webhook_id)
        delivery.payload = dict(event.payload)
        priced = add_prices(session, order_id, order)
    ctx.log(f"order {order.external_id}: {priced} lines priced", "info", order_id=str(order_id))
    return {"order_id": str(order_id), "priced": priced}


def _refunded(
    ctx: JobContext, webhook_id: uuid.UUID, refund: RemoteRefund, returned: Returned, pushes: int
) -> dict[str, Any]:
    # Called as the delivery's transaction returns: logs what that transaction commits.
    given = ", ".join(f"{sku} +{n}" for sku, n in sorted(returned.restocked.items()))
    ctx.log(
        f"refund of order {refund.order_external_id}: {len(returned.returns)} lines newly "
        f"returned, stock {'given back (' + given + ')' if given else 'unchanged'}, "
        f"{pushes} real-time pushes enqueued",
        "info",
        order_id=str(returned.order_id),
    )
    return {
        "webhook_id": str(webhook_id),
        "order_id": str(returned.order_id),
        "refund_lines": len(returned.returns),
        "restocked": returned.restocked,
        "pushes": pushes,
    }


def _effect(ingested: Ingested) -> str:
    if ingested.restored:
        returned = ", ".join(f"{r.sku} +{r.returned}" for r in ingested.restored)
        return f"given back (cancelled: {returned})"
    return "applied" if ingested.stock_applied else "unchanged"


def _delivery(session: Session, webhook_id: uuid.UUID) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, webhook_id, with_for_update=True)
    if delivery is None:
        raise PermanentError(f"webhook delivery {webhook_id} does not exist")
    return delivery


@job_type(
    CONSUME_JOB,
    capability=Capability.ORDER_WEBHOOKS,
    internal="each store with an order queue has one listener, which hands over to its own "
    "successor; beat restarts a broken chain (FUSION_ORDER_QUEUE_POLL_S)",
)
def consume_order_queue(ctx: JobContext) -> dict[str, Any]:
    """Listen on the store's order notification queue for ``FUSION_ORDER_QUEUE_LISTEN_S``
    (back-to-back long polls, with a checkpoint before each), storing each new notification
    once and enqueueing its ``process_webhook``, in one transaction per notification; one
    naming another seller than the store's is dropped from the queue unstored (counted
    ``refused``). Then enqueue the store's next listener (one per job, by idempotency key) while
    the store is active and names its queue, so the queue is read without pause. A job whose
    successor exists already (a rerun after a crash past the hand-over) reads nothing.

    Raises UnsupportedCapability for a platform without a queue, PermanentError for a store
    that names none; a notification whose handling failed stays on the queue for the next
    read; an error reaching the queue itself retries the job on the ladder."""
    store_id = ctx.require_store()
    if _successor(ctx, store_id) is not None:
        return {"handed_over_already": True}
    outcomes: Counter[str] = Counter()
    with store_client(ctx, Capability.ORDER_WEBHOOKS) as bound:

        def handle(event: WebhookEvent) -> None:
            body = json.dumps(dict(event.payload), sort_keys=True, separators=(",", ":"))
            try:
                with ctx.session() as session:
                    store = session.get(Store, bound.store.id)
                    if store is None:
                        raise PermanentError(f"store {bound.store.id} no longer exists")
                    receipt = record(
                        session, bound.plugin, store=store, event=event, body=body.encode()
                    )
            except WebhookRefused:
                # Another seller's notification on this queue: dropped, never stored.
                outcomes["refused"] += 1
                return
            outcomes[receipt.outcome] += 1

        queue = bound.plugin.order_queue(bound.client, handle)
        run = queue.listen(seconds=ctx.settings.order_queue_listen_s, between=ctx.checkpoint)
    result: dict[str, Any] = {
        "received": run.received,
        "accepted": outcomes["accepted"],
        "duplicates": outcomes["duplicate"] + run.duplicates,
        "ignored": outcomes["ignored"],
        "invalid": run.invalid,
        "refused": outcomes["refused"],
        "failed": run.failed,
    }
    ctx.log(
        f"order queue: {result['received']} received, {result['accepted']} accepted, "
        f"{result['duplicates']} already stored, {result['ignored']} ignored, "
        f"{result['invalid']} not notifications (dropped), "
        f"{result['refused']} for another seller (dropped), "
        f"{result['failed']} left on the queue after a failure",
        "warning" if run.failed or run.invalid or result["refused"] else "info",
        **result,
    )
    successor = _hand_over(ctx, store_id)
    if successor is None:
        ctx.log("the store no longer reads an order queue: no next listener", "info")
    result["successor"] = str(successor) if successor else None
    return result


def _successor_key(store_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"{CONSUME_JOB}:{store_id}:after:{job_id}"


def _successor(ctx: JobContext, store_id: uuid.UUID) -> uuid.UUID | None:
    with ctx.session() as session:
        return session.scalar(
            select(Job.id).where(Job.idempotency_key == _successor_key(store_id, ctx.job_id))
        )


def _hand_over(ctx: JobContext, store_id: uuid.UUID) -> uuid.UUID | None:
    """Enqueue the store's next listener (once per job: its key names this job), published
    at once after the commit; None when queue reading is off, or the store is gone, not
    active or names no queue any more (beat starts one again when it does)."""
    if ctx.settings.order_queue_poll_s <= 0:
        return None
    reads = order_queue_stores()
    with ctx.session() as session:
        live = session.scalar(
            select(Store.id).where(
                Store.id == store_id,
                Store.status == StoreStatus.ACTIVE,
                reads.where if reads.where is not None else true(),
            )
        )
        if live is None:
            return None
        job = enqueue(
            session,
            org_id=ctx.org_id,
            job_type=CONSUME_JOB,
            store_id=store_id,
            idempotency_key=_successor_key(store_id, ctx.job_id),
            notes=[f"listens after {ctx.job_id}"],
        )
        return job.id


@job_type(SUBSCRIBE_JOB, capability=Capability.ORDER_WEBHOOKS)
def subscribe_order_events(ctx: JobContext) -> dict[str, Any]:
    """Ask the store's platform to deliver its order events to this hub's receiver
    (``FUSION_PUBLIC_URL`` + ``/webhooks/<platform>/<store id>``), signed with the store's
    webhook secret; subscriptions that exist already are left alone, so it is safe to run
    again. Raises PermanentError when the hub has no public URL or the store no webhook
    secret (every delivery would be refused), UnsupportedCapability where the platform has no
    API for it."""
    if not ctx.settings.public_url:
        raise PermanentError("FUSION_PUBLIC_URL is not set: platforms have no address to call")
    store_id = ctx.require_store()
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is None:
            raise PermanentError(f"store {store_id} no longer exists")
        secret, platform = webhook_secret(ctx.settings, store), store.platform
    if secret is None:
        raise PermanentError("the store has no webhook secret to verify deliveries with")
    uri = receiver_url(ctx.settings.public_url, platform, store_id)
    with store_client(ctx, Capability.ORDER_WEBHOOKS) as bound:
        added = bound.client.subscribe_order_events(uri, secret)
    ctx.log(
        f"order events go to {uri}: "
        + (f"subscribed to {', '.join(added)}" if added else "nothing new to subscribe"),
        "info",
        added=added,
    )
    return {"uri": uri, "added": added}
