"""The recurring inventory sync: one ``sync_inventory`` job per active store per 15 minutes.

Beat sends ``fusion.inventory.sync_all_stores`` every 15 minutes; the task calls
:func:`sync_all_stores`. The stores are found through ``stores_due_for_sync()`` (migration
0005), the one narrow cross-org read: it returns ids only, and skips stores whose previous
sync is still pending, claimed or running. Each org's jobs are then enqueued in that org's own
session (RLS holds; the messages go out after its commit) with an idempotency key per
(store, slot), so a second or concurrent run in the same slot enqueues nothing.
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

SYNC_INVENTORY = "sync_inventory"  # the plugin core's job type (fusion/plugins/jobs.py)
SLOT = timedelta(minutes=15)
ACTIVE = "active"
DUE = text("SELECT org_id, store_id FROM stores_due_for_sync()")
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


def idempotency_key(store_id: uuid.UUID, slot: datetime) -> str:
    """The key of ``store_id``'s sync job for ``slot`` (unique per org, so it names the store)."""
    return f"{SYNC_INVENTORY}:{store_id}:{slot_start(slot).strftime('%Y-%m-%dT%H:%MZ')}"


def sync_all_stores(database: Database, *, now: datetime | None = None) -> SyncRun:
    """Enqueue one ``sync_inventory`` job for every active store of every org that has none
    pending, claimed or running and none yet for the current slot; returns what it did.

    Safe to run twice or concurrently: a store gets at most one job per slot. An org whose
    enqueue fails with a FusionError is logged and skipped (the next slot tries again) without
    stopping the others; database errors propagate (the task fails; beat runs it again).
    ``now`` (aware) picks the slot; default: the current time.
    """
    slot = slot_start(now or datetime.now(UTC))
    with database.system_session() as session:
        rows = session.execute(DUE).all()
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        by_org[row.org_id].append(row.store_id)
    enqueued = failed = 0
    for org_id, store_ids in by_org.items():
        try:
            enqueued += _enqueue_for_org(database, org_id, store_ids, slot)
        except FusionError as exc:
            failed += 1
            log.warning("inventory sync: org %s skipped: %s", org_id, type(exc).__name__)
    return SyncRun(slot=slot, due=len(rows), enqueued=enqueued, failed_orgs=failed)


def _enqueue_for_org(
    database: Database, org_id: uuid.UUID, store_ids: Sequence[uuid.UUID], slot: datetime
) -> int:
    with database.org_session(org_id) as session:
        session.execute(ORG_LOCK, {"key": f"{SYNC_INVENTORY}:{org_id}"})
        # Re-read under RLS: a store deleted or paused since the cross-org read gets nothing.
        live = session.scalars(
            select(Store.id).where(Store.id.in_(store_ids), Store.status == ACTIVE)
        ).all()
        keys = {store_id: idempotency_key(store_id, slot) for store_id in live}
        taken = set(
            session.scalars(
                select(Job.idempotency_key).where(Job.idempotency_key.in_(keys.values()))
            )
        )
        specs = [
            JobSpec(job_type=SYNC_INVENTORY, store_id=store_id, idempotency_key=key)
            for store_id, key in keys.items()
            if key not in taken
        ]
        for chunk in _chunks(specs, service.MAX_BULK):
            service.enqueue_many(session, org_id=org_id, specs=chunk)
    return len(specs)


def _chunks(items: Sequence[JobSpec], size: int) -> Iterable[Sequence[JobSpec]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
