"""The recurring per-store jobs, fanned out by beat: one job of a type per active store per
slot (``sync_inventory`` and ``reconcile_orders`` every 15 minutes, ``consume_order_queue``
every minute for the stores whose platform sends order events to a queue they name).

The beat tasks call :func:`enqueue_for_due_stores` with their job type, slot and store
filter. The stores are found through ``stores_due_for(job_type, platforms)`` (migration
0008), the one narrow cross-org read: it returns ids only, and skips stores whose previous
job of that type is still pending, claimed or running. Each org's jobs are then enqueued in
that org's own session (RLS holds; the messages go out after its commit) with an idempotency
key per (store, job type, slot), so a second or concurrent run in the same slot enqueues
nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, exists, select, text, true
from sqlalchemy.orm import Session

from fusion.db.session import Database
from fusion.errors import FusionError
from fusion.jobs import service
from fusion.jobs.models import Job, JobStatus
from fusion.jobs.service import JobSpec
from fusion.stores.models import Store, StoreStatus

log = logging.getLogger(__name__)

SLOT = timedelta(minutes=15)

DUE = text("SELECT org_id, store_id FROM stores_due_for(:job_type, :platforms)")
# Serialises runs per org so the "already enqueued this slot" read below is exact.
ORG_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class SyncRun:
    """What one run did: the slot, stores found due, jobs enqueued, orgs that failed."""

    slot: datetime
    due: int
    enqueued: int
    failed_orgs: int


@dataclass(frozen=True)
class StoreFilter:
    """Which active stores a recurring job is for: those on ``platforms`` (None: every
    platform) that also match ``where`` (checked in the org's own session)."""

    platforms: Sequence[str] | None = None
    where: ColumnElement[bool] | None = None


EVERY_STORE = StoreFilter()


def slot_start(moment: datetime, every: timedelta = SLOT) -> datetime:
    """The start of the slot of length ``every`` (whole seconds, counted from the epoch, so
    15 minutes means :00, :15, :30, :45) holding ``moment``, in UTC. Raises ValueError for a
    naive datetime (a slot is only meaningful on one clock) or a slot under one second."""
    if moment.tzinfo is None:
        raise ValueError("slot_start needs an aware datetime")
    seconds = int(every.total_seconds())
    if seconds < 1:
        raise ValueError("a slot is at least one second long")
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, UTC)


def idempotency_key(
    store_id: uuid.UUID, slot: datetime, job_type: str, every: timedelta = SLOT
) -> str:
    """The key of ``store_id``'s ``job_type`` job for ``slot`` (unique per org, so it names
    the store)."""
    start = slot_start(slot, every)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ" if start.second else "%Y-%m-%dT%H:%MZ")
    return f"{job_type}:{store_id}:{stamp}"


def enqueue_for_due_stores(
    database: Database,
    *,
    job_type: str,
    now: datetime | None = None,
    every: timedelta = SLOT,
    stores: StoreFilter = EVERY_STORE,
) -> SyncRun:
    """Enqueue one ``job_type`` job for every active store (of ``stores``) of every org that
    has no job of that type pending, claimed or running and none yet for the current slot of
    length ``every``; returns what it did.

    Safe to run twice or concurrently: a store gets at most one job per slot. An org whose
    enqueue fails with a FusionError is logged and skipped (the next slot tries again) without
    stopping the others; database errors propagate (the task fails; beat runs it again).
    ``now`` (aware) picks the slot; default: the current time.
    """
    slot = slot_start(now or datetime.now(UTC), every)
    platforms = list(stores.platforms) if stores.platforms is not None else None
    with database.system_session() as session:
        rows = session.execute(DUE, {"job_type": job_type, "platforms": platforms}).all()
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        by_org[row.org_id].append(row.store_id)
    enqueued = failed = 0
    for org_id, store_ids in by_org.items():
        try:
            enqueued += _enqueue_for_org(
                database, org_id, store_ids, slot, job_type, every, stores.where
            )
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
    every: timedelta,
    where: ColumnElement[bool] | None,
) -> int:
    with database.org_session(org_id) as session:
        lock_org(session, org_id, job_type)
        # Re-read under RLS: a store deleted or paused since the cross-org read gets nothing.
        matching = where if where is not None else true()
        live = session.scalars(
            select(Store.id).where(
                Store.id.in_(store_ids),
                Store.status == StoreStatus.ACTIVE,
                matching,
                # And, under the lock, still none in flight: another enqueuer holding the same
                # lock (a store connected just now) may have made one since the cross-org read.
                ~in_flight(job_type),
            )
        ).all()
        keys = {store_id: idempotency_key(store_id, slot, job_type, every) for store_id in live}
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


def in_flight(job_type: str) -> ColumnElement[bool]:
    """Whether the store (``Store.id`` of the enclosing query) has a ``job_type`` job pending,
    claimed or running."""
    return exists().where(
        Job.store_id == Store.id,
        Job.job_type == job_type,
        Job.status.in_([JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.RUNNING]),
    )


def lock_org(session: Session, org_id: uuid.UUID, job_type: str) -> None:
    """Serialise, until the transaction ends, every enqueuer of the org's recurring
    ``job_type`` jobs (beat's fan-out and anyone starting one outside it)."""
    session.execute(ORG_LOCK, {"key": f"{job_type}:{org_id}"})


def _chunks(items: Sequence[JobSpec], size: int) -> Iterable[Sequence[JobSpec]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
