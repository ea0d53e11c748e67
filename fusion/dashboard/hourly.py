"""Hourly series for the dashboard's charts, from what the hub already records.

- Jobs finished and failed per hour: ``jobs.finished_at`` (kept for the jobs' retention).
- Throttles per hour and store: the per-minute throttle counts the HTTP client keeps in Redis
  (``fusion.telemetry.store_throttled``, kept 8 days).
- Inventory sync lag per store: at the end of each hour (now, for the current one), how long
  since the store's last completed ``sync_inventory`` job; None before any such job is known.

Everything is read inside the caller's org-scoped session (RLS), Redis only for the org's own
stores.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.errors import ValidationFailed
from fusion.inventory.service import SYNC_INVENTORY_JOB
from fusion.stores.models import Store

log = logging.getLogger(__name__)

MAX_HOURS = 7 * 24  # the throttle counts are kept 8 days

JOBS_PER_HOUR = text(
    """
    SELECT date_trunc('hour', finished_at) AS hour,
           count(*) FILTER (WHERE status = 'completed') AS finished,
           count(*) FILTER (WHERE status = 'failed') AS failed
      FROM jobs
     WHERE finished_at >= :since AND status IN ('completed', 'failed')
     GROUP BY 1
    """
)
SYNCED_BY_HOUR = text(
    """
    SELECT s.id AS store_id, g.hour,
           (SELECT max(j.finished_at) FROM jobs j
             WHERE j.store_id = s.id AND j.status = 'completed' AND j.job_type = :job_type
               AND j.finished_at < LEAST(g.hour + interval '1 hour', :now)) AS synced_at
      FROM stores s
     CROSS JOIN generate_series(CAST(:first AS timestamptz), CAST(:last AS timestamptz),
                                interval '1 hour') AS g(hour)
    """
)


@dataclass
class Hour:
    """One hour of the series (``hour`` is its start, UTC)."""

    hour: datetime
    jobs_finished: int = 0
    jobs_failed: int = 0
    throttles: int | None = 0  # None: Redis could not be read
    throttles_by_store: dict[str, int] = field(default_factory=dict)
    sync_lag_s: dict[str, float | None] = field(default_factory=dict)


def hours_since(since: datetime, now: datetime) -> list[datetime]:
    """The starts of the clock hours from ``since``'s to now's. Raises ValidationFailed
    (on ``since``) for a moment in the future or more than ``MAX_HOURS`` back."""
    first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = now.replace(minute=0, second=0, microsecond=0)
    if first > last:
        raise ValidationFailed(fields={"since": ["must not be in the future"]})
    if last - first >= timedelta(hours=MAX_HOURS):
        raise ValidationFailed(fields={"since": [f"at most {MAX_HOURS} hours back"]})
    return [first + timedelta(hours=i) for i in range(int((last - first) / timedelta(hours=1)) + 1)]


def hourly(session: Session, redis_client: Any, *, since: datetime) -> list[Hour]:
    """One :class:`Hour` per clock hour from ``since`` to now, oldest first. Raises as
    :func:`hours_since`."""
    now = datetime.now(UTC)
    starts = hours_since(since, now)
    series = {h: Hour(hour=h) for h in starts}
    for row in session.execute(JOBS_PER_HOUR, {"since": starts[0]}):
        if row.hour in series:
            series[row.hour].jobs_finished = int(row.finished)
            series[row.hour].jobs_failed = int(row.failed)
    stores = list(session.scalars(select(Store.id).order_by(Store.id)))
    _throttles(series, redis_client, stores, starts[0], now)
    rows = session.execute(
        SYNCED_BY_HOUR,
        {"job_type": SYNC_INVENTORY_JOB, "now": now, "first": starts[0], "last": starts[-1]},
    )
    for row in rows:
        end = min(row.hour + timedelta(hours=1), now)
        lag = None if row.synced_at is None else round((end - row.synced_at).total_seconds(), 1)
        series[row.hour].sync_lag_s[str(row.store_id)] = lag
    return [series[h] for h in starts]


def _throttles(
    series: dict[datetime, Hour],
    redis_client: Any,
    stores: list[uuid.UUID],
    first: datetime,
    now: datetime,
) -> None:
    try:
        minutes = telemetry.throttle_minutes(
            redis_client, stores, since=first.timestamp(), until=now.timestamp() + 60
        )
    except Exception:  # a chart: Redis down shows "unknown", not an error
        log.warning("could not read the throttle counts")
        for hour in series.values():
            hour.throttles = None
        return
    for store, counts in minutes.items():
        for at, count in counts.items():
            slot = series.get(datetime.fromtimestamp(at - at % 3600, UTC))
            if slot is not None and slot.throttles is not None:
                slot.throttles += count
                slot.throttles_by_store[store] = slot.throttles_by_store.get(store, 0) + count
