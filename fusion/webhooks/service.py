"""Receiving a platform's webhook delivery: route, verify, store once, enqueue its processing.
(:func:`record`, the "store once, enqueue" half, also takes events read from a platform's
order notification queue.)

A delivery carries no credentials, only its store's id in the URL and the platform's
signature over the raw body. The store is routed through the narrow ``webhook_route``
function (its org and platform, nothing else); everything after that happens in the store's
org session. Every way a delivery can fail to prove itself (unknown store, wrong platform, no
secret, bad or missing signature, stale timestamp, a shop other than the store's) raises the
same :class:`WebhookRefused`, so the answer reveals nothing about which stores exist. Nothing
here calls a platform: the receiver must answer within the platform's few seconds.

A delivery is stored once per delivery id *and* once per body digest: the signature covers
the body, not (on Shopify) the id header, so the same signed bytes under a new id are the
same delivery.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import FusionError, MalformedWebhook, NotFound, PermanentError, ValidationFailed
from fusion.jobs.models import Job
from fusion.jobs.recurring import StoreFilter, in_flight, lock_org
from fusion.jobs.service import enqueue
from fusion.plugins.base import Plugin, WebhookEvent
from fusion.plugins.registry import get_plugin, plugin_slugs
from fusion.stores.client import webhook_secret
from fusion.stores.models import Store, StoreStatus
from fusion.webhooks.models import DeliveryStatus, WebhookDelivery

PROCESS_JOB = "process_webhook"
# The prices of an order whose notification took its stock first (Amazon's).
PRICE_JOB = "price_order"
SUBSCRIBE_JOB = "subscribe_order_events"
CONSUME_JOB = "consume_order_queue"
MAX_DELIVERY_ID = 255
MAX_TOPIC = 120


class WebhookRefused(FusionError):
    """The delivery did not prove it comes from the store's platform (one answer for all)."""


class MalformedDelivery(ValidationFailed):
    """A correctly signed delivery whose body is not an event the platform would send."""


@dataclass(frozen=True)
class Receipt:
    """The outcome of a verified delivery: ``accepted`` (stored, job enqueued), ``ignored``
    (stored, a topic the hub does not act on), or ``duplicate`` (seen before; nothing done)."""

    outcome: str
    webhook_id: uuid.UUID | None
    job_id: uuid.UUID | None = None


def receive(
    database: Database,
    settings: Settings,
    *,
    platform: str,
    store_id: uuid.UUID,
    headers: Mapping[str, str],
    body: bytes,
) -> Receipt:
    """Verify one delivery for ``store_id`` on ``platform`` and store it once per delivery id,
    enqueueing ``process_webhook`` in the same transaction when it is new and acted on.

    Raises WebhookRefused for an unknown store, a platform other than the store's, a store
    without a webhook secret, or a delivery the plugin does not verify (signature, freshness,
    missing headers); MalformedDelivery for a verified body that is not a valid event. Nothing
    is stored when it raises. The caller must cap ``body`` before calling. Every outcome is
    counted (``fusion_webhook_deliveries_total``: accepted, ignored, duplicate, refused,
    malformed), under the platform's name when it is a known one."""
    known = platform if platform in plugin_slugs() else "unknown"
    try:
        receipt = _receive(
            database, settings, platform=platform, store_id=store_id, headers=headers, body=body
        )
    except WebhookRefused:
        telemetry.WEBHOOK_DELIVERIES.inc(known, "refused")
        raise
    except MalformedDelivery:
        telemetry.WEBHOOK_DELIVERIES.inc(known, "malformed")
        raise
    telemetry.WEBHOOK_DELIVERIES.inc(known, receipt.outcome)
    return receipt


def _receive(
    database: Database,
    settings: Settings,
    *,
    platform: str,
    store_id: uuid.UUID,
    headers: Mapping[str, str],
    body: bytes,
) -> Receipt:
    org_id = _route(database, store_id, platform)
    plugin = _plugin(platform)
    with database.org_session(org_id) as session:
        store = session.get(Store, store_id)
        if store is None:
            raise WebhookRefused("webhook refused")
        secret = webhook_secret(settings, store)
        if not secret:
            raise WebhookRefused("webhook refused")
        event = _verify(plugin, headers, body, secret)
        return record(session, plugin, store=store, event=event, body=body, headers=headers)


def record(
    session: Session,
    plugin: Plugin,
    *,
    store: Store,
    event: WebhookEvent,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> Receipt:
    """Store a proven ``event`` for ``store`` once per delivery id and once per body digest,
    in the caller's org transaction, and enqueue ``process_webhook`` with it when it is new
    and acted on; whatever brought it (a verified HTTP delivery with its ``headers``, a
    platform's notification queue). ``body`` is the raw bytes it came as, kept only as a
    hash: the same bytes again, under any delivery id, are a duplicate.

    Raises WebhookRefused when the event names a shop other than the store's, or none
    (``Plugin.delivery_is_for``); MalformedDelivery for an event without a usable delivery
    id. Nothing is stored when it raises."""
    if not event.delivery_id or len(event.delivery_id) > MAX_DELIVERY_ID:
        raise MalformedDelivery(fields={"delivery_id": ["missing or too long"]})
    if not plugin.delivery_is_for(headers or {}, event, store.external_id):
        raise WebhookRefused("webhook refused")
    org_id, store_id = store.org_id, store.id
    acted_on = _acts_on(plugin, event)
    # No conflict target: a repeated delivery id and a repeated body digest (the partial
    # unique index) are both the same delivery again.
    webhook_id = session.execute(
        _STORE_ONCE,
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "store_id": store_id,
            "platform": plugin.slug,
            "delivery_id": event.delivery_id,
            "topic": event.topic[:MAX_TOPIC],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "payload": dict(event.payload),
            "status": DeliveryStatus.RECEIVED if acted_on else DeliveryStatus.IGNORED,
        },
    ).scalar_one_or_none()
    if webhook_id is None:
        return Receipt("duplicate", None)
    if not acted_on:
        return Receipt("ignored", webhook_id)
    # On the store's platform queue, not default: an order read back from a slow platform
    # (Amazon's Orders API waits on its rate limit) holds only that platform's workers, never
    # the processing of the other platforms' sales.
    job = enqueue(
        session,
        org_id=org_id,
        job_type=PROCESS_JOB,
        store_id=store_id,
        payload={"webhook_id": str(webhook_id)},
    )
    _link(session, webhook_id, job.id)
    return Receipt("accepted", webhook_id, job.id)


# Prebuilt (every delivery makes one): compiled once per process.
_STORE_ONCE = insert(WebhookDelivery).on_conflict_do_nothing().returning(WebhookDelivery.id)


def receiver_url(public_url: str, platform: str, store_id: uuid.UUID) -> str:
    """Where ``store_id``'s platform delivers its webhooks to this hub."""
    return f"{public_url}/webhooks/{platform}/{store_id}"


def subscribe_on_connect(session: Session, settings: Settings, store: Store) -> Job | None:
    """Enqueue ``subscribe_order_events`` for a store just connected, when the hub has a
    public address (``FUSION_PUBLIC_URL``) and the store a webhook secret to verify the
    deliveries with; None otherwise (orders then come by the reconciliation pull alone)."""
    if not settings.public_url or store.webhook_secret_encrypted is None:
        return None
    return enqueue(session, org_id=store.org_id, job_type=SUBSCRIBE_JOB, store_id=store.id)


def start_order_listener(session: Session, settings: Settings, store: Store) -> Job | None:
    """Enqueue the store's ``consume_order_queue`` listener now when it is active, names its
    order notification queue, queue reading is on (``FUSION_ORDER_QUEUE_POLL_S`` > 0) and no
    listener is pending or running, so a store just connected, resumed or given its queue
    receives its orders within moments instead of at beat's next check; None otherwise.
    Serialised with beat's fan-out (one listener per store)."""
    setting = get_plugin(store.platform).order_queue_setting
    if settings.order_queue_poll_s <= 0 or setting is None:
        return None
    if store.status != StoreStatus.ACTIVE or not (store.settings or {}).get(setting):
        return None
    lock_org(session, store.org_id, CONSUME_JOB)
    session.flush()
    busy = session.scalar(select(Store.id).where(Store.id == store.id, in_flight(CONSUME_JOB)))
    if busy is not None:
        return None
    return enqueue(
        session,
        org_id=store.org_id,
        job_type=CONSUME_JOB,
        store_id=store.id,
        notes=["the store reads an order queue: listening from now"],
    )


def _route(database: Database, store_id: uuid.UUID, platform: str) -> uuid.UUID:
    route = _ROUTES.get(store_id)
    if route is None:
        with database.system_session() as session:
            row = session.execute(_WEBHOOK_ROUTE, {"store_id": store_id}).first()
        if row is None:
            raise WebhookRefused("webhook refused")
        if len(_ROUTES) >= ROUTES_KEPT:
            _ROUTES.clear()  # read again as their deliveries come
        route = _ROUTES[store_id] = (uuid.UUID(str(row.org_id)), row.platform)
    org_id, routed_platform = route
    if routed_platform != platform:
        raise WebhookRefused("webhook refused")
    return org_id


_WEBHOOK_ROUTE = text("SELECT org_id, platform FROM webhook_route(:store_id)")
# Routes found (store id -> org, platform), kept so that a busy store's deliveries skip the
# routing transaction: a store never changes org or platform, and the org session re-reads
# the store (a deleted one is refused there). Unknown stores are never kept; past
# ROUTES_KEPT all are dropped and read again.
_ROUTES: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
ROUTES_KEPT = 10_000


def _plugin(platform: str) -> Plugin:
    try:
        return get_plugin(platform)
    except NotFound:
        raise WebhookRefused("webhook refused") from None


def _verify(plugin: Plugin, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
    try:
        return plugin.verify_webhook(headers, body, secret)
    except MalformedWebhook:
        raise MalformedDelivery(fields={"body": ["not a valid event"]}) from None
    except PermanentError:
        raise WebhookRefused("webhook refused") from None


def _acts_on(plugin: Plugin, event: WebhookEvent) -> bool:
    """Whether the hub processes this event: it carries an order or a refund of order lines,
    or names an order the platform must be asked for. An order event whose payload the
    plugin cannot read is still processed, so the failure shows in the job."""
    try:
        return (
            plugin.needs_lookup(event)
            or plugin.order_from_event(event) is not None
            or plugin.refund_from_event(event) is not None
        )
    except PermanentError:
        return True


def _link(session: Session, webhook_id: uuid.UUID, job_id: uuid.UUID) -> None:
    session.execute(_LINK, {"webhook": webhook_id, "job": job_id})


_LINK = (
    update(WebhookDelivery)
    .where(WebhookDelivery.id == bindparam("webhook"))
    .values(job_id=bindparam("job"))
)


def order_queue_stores() -> StoreFilter:
    """The stores with an order notification queue: on a platform whose plugin declares
    ``order_queue_setting``, and naming their queue in that setting."""
    settings = {
        slug: setting
        for slug in plugin_slugs()
        if (setting := get_plugin(slug).order_queue_setting) is not None
    }
    named = [
        and_(Store.platform == slug, Store.settings[setting].astext != "")
        for slug, setting in settings.items()
    ]
    return StoreFilter(platforms=sorted(settings), where=or_(*named) if named else None)


def get_delivery(session: Session, delivery_id: uuid.UUID) -> WebhookDelivery:
    """One stored webhook delivery of the session's org (another org's id is NotFound, like an
    unknown one: row-level security hides it)."""
    found = session.get(WebhookDelivery, delivery_id)
    if found is None:
        raise NotFound("No such webhook delivery.")
    return found
