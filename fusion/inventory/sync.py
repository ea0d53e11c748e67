"""The recurring per-store jobs: one ``sync_inventory`` and one ``reconcile_orders`` job per
active store per 15 minutes.

Beat sends ``fusion.inventory.sync_all_stores`` and ``fusion.orders.reconcile_all_stores``
every 15 minutes; both tasks call :func:`sync_all_stores` with their job type. The stores
are found through ``stores_due_for(job_type)`` (migration 0005), the one narrow cross-org
read: it returns ids only, and skips stores whose previous job of that type is still
pending, claimed or running. Each org's jobs are then enqueued in that org's own session
(RLS holds; the messages go out after its commit) with an idempotency key per (store, job
type, slot), so a second or concurrent run in the same slot enqueues nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from fusion.db.session import Database
from fusion.errors import FusionError
from fusion.jobs import service
from fusion.jobs.models import Job
from fusion.jobs.service import JobSpec
from fusion.stores.models import Store

log = logging.getLogger(__name__)

SYNC_INVENTORY = "sync_inventory"  # the plugin core's job types (fusion/plugins/jobs.py)
RECONCILE_ORDERS = "reconcile_orders"  # the pull behind webhooks, which get lost
SLOT = timedelta(minutes=15)
ACTIVE = "active"
DUE = text("SELECT org_id, store_id FROM stores_due_for(:job_type)")
# Serialises runs per org so the "already enqueued this slot" read below is exact.
ORG_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class SyncRun:
    """What one run did: the slot, stores found due, jobs enqueued, orgs that failed."""

    slot: datetime
    due: int
    enqueued: int
    failed_orgs: int


def slot_start(moment: datetime) -> datetime:
    """The start of the 15-minute slot holding ``moment``, in UTC. Raises ValueError for a
    naive datetime (a slot is only meaningful on one clock)."""
    if moment.tzinfo is None:
        raise ValueError("slot_start needs an aware datetime")
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def idempotency_key(store_id: uuid.UUID, slot: datetime, job_type: str = SYNC_INVENTORY) -> str:
    """The key of ``store_id``'s ``job_type`` job for ``slot`` (unique per org, so it names
    the store)."""
    return f"{job_type}:{store_id}:{slot_start(slot).strftime('%Y-%m-%dT%H:%MZ')}"


def sync_all_stores(
    database: Database, *, now: datetime | None = None, job_type: str = SYNC_INVENTORY
) -> SyncRun:
    """Enqueue one ``job_type`` job (``sync_inventory`` or ``reconcile_orders``) for every
    active store of every org that has no job of that type pending, claimed or running and
    none yet for the current slot; returns what it did.

    Safe to run twice or concurrently: a store gets at most one job per slot. An org whose
    enqueue fails with a FusionError is logged and skipped (the next slot tries again) without
    stopping the others; database errors propagate (the task fails; beat runs it again).
    ``now`` (aware) picks the slot; default: the current time.
    """
    slot = slot_start(now or datetime.now(UTC))
    with database.system_session() as session:
        rows = session.execute(DUE, {"job_type": job_type}).all()
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        by_org[row.org_id].append(row.store_id)
    enqueued = failed = 0
    for org_id, store_ids in by_org.items():
        try:
            enqueued += _enqueue_for_org(database, org_id, store_ids, slot, job_type)
        except FusionError as exc:
            failed += 1
            log.warning("%s: org %s skipped: %s", job_type, org_id, type(exc).__name__)
    return SyncRun(slot=slot, due=len(rows), enqueued=enqueued, failed_orgs=failed)


def _enqueue_for_org(
    database: Database,
    org_id: uuid.UUID,
    store_ids: Sequence[uuid.UUID],
    slot: datetime,
    job_type: str,
) -> int:
    with database.org_session(org_id) as session:
        session.execute(ORG_LOCK, {"key": f"{job_type}:{org_id}"})
        # Re-read under RLS: a store deleted or paused since the cross-org read gets nothing.
        live = session.scalars(
            select(Store.id).where(Store.id.in_(store_ids), Store.status == ACTIVE)
        ).all()
        keys = {store_id: idempotency_key(store_id, slot, job_type) for store_id in live}
        taken = set(
            session.scalars(
                select(Job.idempotency_key).where(Job.idempotency_key.in_(keys.values()))
            )
        )
        specs = [
            JobSpec(job_type=job_type, store_id=store_id, idempotency_key=key)
            for store_id, key in keys.items()
            if key not in taken
        ]
        for chunk in _chunks(specs, service.MAX_BULK):
            service.enqueue_many(session, org_id=org_id, specs=chunk)
    return len(specs)


def _chunks(items: Sequence[JobSpec], size: int) -> Iterable[Sequence[JobSpec]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
