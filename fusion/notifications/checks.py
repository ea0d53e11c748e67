"""The conditions no single change announces, found by looking: beat runs :func:`run_checks`
every few minutes (approvals about to expire are announced by the approval-expiry task,
``fusion.approvals.expiry.announce_expiring``).

Per org with an enabled channel (``notification_orgs()``), inside that org's own scope:

- ``store.sync_late``: an active store's inventory sync or order pull last done longer ago
  than the channel's ``sync_late_minutes`` (a store never synced counts from its creation);
- ``store.sync_failing``: the store's latest finished sync or pull job failed;
- ``store.throttled``: throttled calls to one store (``fusion_store_throttles``, counted in
  Redis by the HTTP helper) since the previous check, as a rate per hour, at or above
  ``throttles_per_hour``;
- ``jobs.failing``: jobs of the org that failed for good in the last hour, at or above
  ``failed_jobs_per_hour`` (notification deliveries themselves are not counted, so a broken
  channel cannot feed itself).

Each condition notifies a channel once per ``FUSION_NOTIFY_REPEAT_S`` window (its dedup key
names the window), so a store late all day is announced once an hour, not every check.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs.models import Job, JobStatus
from fusion.notifications.models import Event, NotificationChannel
from fusion.notifications.service import DELIVER_JOB, emit, threshold

log = logging.getLogger(__name__)

ORGS = text("SELECT org_id FROM notification_orgs()")
# When each process was last done, per active store of the session's org.
FRESHNESS = text(
    "SELECT id, name, platform, created_at, last_synced_at, "
    "CAST(state ->> 'orders_reconciled_at' AS timestamptz) AS orders_pulled_at "
    "FROM stores WHERE status = 'active' ORDER BY id"
)
LAST_RUNS = text(
    "SELECT DISTINCT ON (store_id, job_type) store_id, job_type, status::text AS status, id "
    "FROM jobs WHERE job_type = ANY(:types) AND status IN ('completed', 'failed') "
    "AND store_id IS NOT NULL ORDER BY store_id, job_type, finished_at DESC NULLS LAST"
)
FRESHNESS_COLUMN = {"inventory_sync": "last_synced_at", "order_pull": "orders_pulled_at"}
THROTTLE_SNAPSHOT_KEY = "fusion:notify:throttles"


@dataclass
class CheckRun:
    """What one run found: deliveries queued per event, and orgs whose check failed."""

    queued: dict[str, int] = field(default_factory=dict)
    failed_orgs: int = 0

    def add(self, event: Event, n: int) -> None:
        if n:
            self.queued[event.value] = self.queued.get(event.value, 0) + n


def _window(settings: Settings, now: datetime) -> int:
    return int(now.timestamp() // settings.notify_repeat_s)


def _subscribers(session: Session, event: Event) -> list[NotificationChannel]:
    return list(
        session.scalars(
            select(NotificationChannel)
            .where(
                NotificationChannel.enabled.is_(True),
                NotificationChannel.events.contains([event.value]),
            )
            .order_by(NotificationChannel.id)
        )
    )


def _store_data(store: Any) -> dict[str, Any]:
    return {"store_id": str(store.id), "store_name": store.name, "platform": store.platform}


def _check_stores(
    session: Session, org_id: uuid.UUID, now: datetime, window: int, processes: Mapping[str, str],
    run: CheckRun,
) -> None:  # fmt: skip
    stores = session.execute(FRESHNESS).all()
    late_to = _subscribers(session, Event.STORE_SYNC_LATE)
    for store in stores if late_to else ():
        for process in processes:
            last = getattr(store, FRESHNESS_COLUMN[process]) or store.created_at
            for channel in late_to:
                minutes = threshold(channel, "sync_late_minutes")
                if last > now - timedelta(minutes=minutes):
                    continue
                data = {**_store_data(store), "process": process, "late_after_minutes": minutes,
                        "last_at": last.isoformat() if getattr(store, FRESHNESS_COLUMN[process])
                        else None}  # fmt: skip
                run.add(Event.STORE_SYNC_LATE, len(emit(
                    session, org_id=org_id, event=Event.STORE_SYNC_LATE, data=data,
                    dedup_key=f"store.sync_late:{store.id}:{process}:{window}",
                    link_path=f"/orgs/{org_id}/stores/{store.id}", channels=[channel],
                )))  # fmt: skip
    failing_to = _subscribers(session, Event.STORE_SYNC_FAILING)
    if not failing_to:
        return
    by_id = {s.id: s for s in stores}
    process_of = {job_type: process for process, job_type in processes.items()}
    for last in session.execute(LAST_RUNS, {"types": list(process_of)}).all():
        failed = by_id.get(last.store_id)
        if failed is None or last.status != JobStatus.FAILED.value:
            continue
        data = {**_store_data(failed), "process": process_of[last.job_type], "job_id": str(last.id)}
        run.add(Event.STORE_SYNC_FAILING, len(emit(
            session, org_id=org_id, event=Event.STORE_SYNC_FAILING, data=data,
            dedup_key=f"store.sync_failing:{failed.id}:{last.job_type}:{window}",
            link_path=f"/orgs/{org_id}/jobs/{last.id}", channels=failing_to,
        )))  # fmt: skip


def _check_failed_jobs(
    session: Session, org_id: uuid.UUID, now: datetime, window: int, run: CheckRun
) -> None:
    channels = _subscribers(session, Event.JOBS_FAILING)
    if not channels:
        return
    failed = session.scalar(
        select(func.count()).select_from(Job).where(
            Job.status == JobStatus.FAILED, Job.finished_at > now - timedelta(hours=1),
            Job.job_type != DELIVER_JOB,
        )
    ) or 0  # fmt: skip
    for channel in channels:
        limit = threshold(channel, "failed_jobs_per_hour")
        if failed < limit:
            continue
        data = {"failed": int(failed), "minutes": 60, "threshold": limit}
        run.add(Event.JOBS_FAILING, len(emit(
            session, org_id=org_id, event=Event.JOBS_FAILING, data=data,
            dedup_key=f"jobs.failing:{window}", link_path=f"/orgs/{org_id}/jobs?status=failed",
            channels=[channel],
        )))  # fmt: skip


def throttle_counts(redis: Any) -> dict[str, float]:
    """Throttled calls so far per store id (the ``fusion_store_throttles`` counter)."""
    counts: dict[str, float] = {}
    for raw_field, raw in (redis.hgetall(telemetry.STORE_THROTTLES.key) or {}).items():
        labels = json.loads(raw_field)
        counts[labels[0]] = counts.get(labels[0], 0.0) + float(raw)
    return counts


def _check_throttles(
    session: Session, org_id: uuid.UUID, window: int, rates: Mapping[str, tuple[float, float]],
    run: CheckRun,
) -> None:  # fmt: skip
    channels = _subscribers(session, Event.STORE_THROTTLED)
    if not channels or not rates:
        return
    for store in session.execute(FRESHNESS).all():
        if str(store.id) not in rates:
            continue
        throttles, minutes = rates[str(store.id)]
        per_hour = throttles * 60.0 / max(minutes, 1e-6)
        for channel in channels:
            if per_hour < threshold(channel, "throttles_per_hour"):
                continue
            data = {**_store_data(store), "throttles": int(throttles),
                    "minutes": round(minutes, 1), "per_hour": round(per_hour, 1)}  # fmt: skip
            run.add(Event.STORE_THROTTLED, len(emit(
                session, org_id=org_id, event=Event.STORE_THROTTLED, data=data,
                dedup_key=f"store.throttled:{store.id}:{window}",
                link_path=f"/orgs/{org_id}/stores/{store.id}", channels=[channel],
            )))  # fmt: skip


def _throttle_rates(redis: Any, now: datetime) -> dict[str, tuple[float, float]]:
    """Per store: throttled calls since the previous check and the minutes between the two;
    this check's counts become the next one's baseline."""
    if redis is None:
        return {}
    current = throttle_counts(redis)
    previous = {
        k.decode(): v.decode() for k, v in (redis.hgetall(THROTTLE_SNAPSHOT_KEY) or {}).items()
    }
    rates: dict[str, tuple[float, float]] = {}
    for store_id, count in current.items():
        if store_id in previous:
            before, at = (float(x) for x in previous[store_id].split("|"))
            minutes = (now.timestamp() - at) / 60.0
            if count > before and minutes > 0:
                rates[store_id] = (count - before, minutes)
    if current:
        redis.hset(THROTTLE_SNAPSHOT_KEY, mapping={
            k: f"{v}|{now.timestamp()}" for k, v in current.items()
        })  # fmt: skip
    return rates


def run_checks(
    database: Database,
    settings: Settings,
    *,
    processes: Mapping[str, str],
    redis: Any = None,
    now: datetime | None = None,
) -> CheckRun:
    """Check every org with an enabled channel and queue what its channels subscribe to.
    ``processes`` names the job type of each watched process (``inventory_sync``,
    ``order_pull``). One org's failure is logged and counted; the others are still checked."""
    now = now or datetime.now(UTC)
    window, run = _window(settings, now), CheckRun()
    with database.system_session() as session:
        orgs = list(session.scalars(ORGS))
    rates = _throttle_rates(redis, now) if orgs else {}
    for org_id in orgs:
        try:
            with database.org_session(org_id) as session:
                _check_stores(session, org_id, now, window, processes, run)
                _check_failed_jobs(session, org_id, now, window, run)
                _check_throttles(session, org_id, window, rates, run)
        except Exception:
            log.exception("notification checks failed for org %s", org_id)
            run.failed_orgs += 1
    return run
