"""Item-level results of bulk jobs, and re-running only the items that failed.

A bulk job (a bulk stock push, a sync's push, an import) writes one :class:`JobItem` per item
as it decides it: ``ok``, ``failed`` with the platform's (or the file's) reason, or
``skipped``. The job's result counts them. :func:`retry_failed` makes a new job on the same
store for the failed items only; each bulk job type says how its payload names a
subset of items (:func:`retries_with`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fusion.errors import Conflict
from fusion.jobs import service as jobs
from fusion.jobs.models import ItemStatus, Job, JobItem, JobStatus

MAX_REASON = 2000
RETRY_BATCH = 10_000  # failed items a retry carries (a retry of the retry takes the rest)

# (the finished job's payload, the keys of its failed items) -> the new job's type and payload
RetryPayload = Callable[[Mapping[str, Any], Sequence[str]], tuple[str, dict[str, Any]]]
_retries: dict[str, RetryPayload] = {}


@dataclass(frozen=True)
class ItemResult:
    """What became of one item: ``key`` names it (a SKU, an import row's line)."""

    key: str
    status: ItemStatus
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def retries_with(job_type: str, build: RetryPayload) -> None:
    """Declare how a job of ``job_type`` is re-run for a subset of its items."""
    _retries[job_type] = build


def record(
    session: Session, *, org_id: uuid.UUID, job_id: uuid.UUID, results: Iterable[ItemResult]
) -> dict[str, int]:
    """Write ``results`` for the job (an item written again replaces its result, so a job
    retried after a crash records each item once); returns how many of each status."""
    results = list(results)
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "job_id": job_id,
            "key": r.key[:200],
            "status": r.status,
            "reason": r.reason[:MAX_REASON],
            "data": dict(r.data),
        }
        for r in results
    ]
    tally = {s.value: 0 for s in ItemStatus}
    for result in results:
        tally[result.status.value] += 1
    if rows:
        stmt = pg_insert(JobItem).values(rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["job_id", "key"],
                set_={
                    "status": stmt.excluded.status,
                    "reason": stmt.excluded.reason,
                    "data": stmt.excluded.data,
                    "updated_at": func.now(),
                },
            )
        )
    return tally


def counts(session: Session, job_id: uuid.UUID) -> dict[str, int]:
    """How many items of the job ended each way."""
    found = dict(
        session.execute(
            select(JobItem.status, func.count())
            .where(JobItem.job_id == job_id)
            .group_by(JobItem.status)
        ).all()
    )
    return {s.value: int(found.get(s, 0)) for s in ItemStatus}


def retry_failed(session: Session, *, job_id: uuid.UUID, created_by: uuid.UUID | None) -> Job:
    """A new job on the job's store (of the type its type retries with) for the job's failed
    items only (its ``parent_job_id`` is the job). Raises NotFound for a job not in this org,
    Conflict when the job is not finished, its type cannot re-run a part of its items, or none
    failed."""
    job = jobs.get_job(session, job_id)
    if job.status not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"the job is {job.status.value}: retry its failed items once it ends")
    build = _retries.get(job.job_type)
    if build is None:
        raise Conflict(f"{job.job_type} jobs have no item-level results to retry")
    failed = list(
        session.scalars(
            select(JobItem.key)
            .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED)
            .order_by(JobItem.created_at, JobItem.key)
            .limit(RETRY_BATCH)
        )
    )
    if not failed:
        raise Conflict("no item of the job failed: nothing to retry")
    job_type, payload = build(job.payload, failed)
    child = jobs.enqueue(
        session,
        org_id=job.org_id,
        job_type=job_type,
        payload=payload,
        store_id=job.store_id,
        created_by=created_by,
        notes=(f"retry of the {len(failed)} failed items of job {job.id}",),
    )
    child.parent_job_id = job.id
    return child
