"""Retention: finished jobs are deleted once they are old enough (beat, hourly).

Completed and cancelled jobs go after ``Settings.job_retention_days`` (14), failed ones after
``failed_job_retention_days`` (90: someone may still re-run them); 0 keeps that kind for ever.
Their logs go with them. Deleting works in batches through ``prune_finished_jobs`` (migration
0009, SECURITY DEFINER, SKIP LOCKED), each batch its own short transaction, so a large backlog
never holds locks for long and concurrent runs share the work. An idempotency key is
forgotten with its job: a client retrying with it after the retention period gets a new job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from fusion.config import Settings
from fusion.db.session import Database

PRUNE = text("SELECT prune_finished_jobs(:done_before, :failed_before, :batch)")
BATCH = 1000
MAX_BATCHES = 100  # at most 100,000 rows a run; the next run takes the rest


def prune_finished_jobs(
    database: Database, settings: Settings, *, now: datetime | None = None, batch: int = BATCH
) -> int:
    """Delete the finished jobs past their retention; returns how many went. Raises only on
    database errors (the next run tries again)."""
    now = now or datetime.now(UTC)
    params = {
        "done_before": _cutoff(now, settings.job_retention_days),
        "failed_before": _cutoff(now, settings.failed_job_retention_days),
        "batch": batch,
    }
    if params["done_before"] is None and params["failed_before"] is None:
        return 0
    deleted = 0
    for _ in range(MAX_BATCHES):
        with database.system_session() as session:
            count = int(session.execute(PRUNE, params).scalar_one())
        deleted += count
        if count < batch:
            break
    return deleted


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None
