"""Failed jobs grouped by what went wrong: store, job type and the first line of the error.

A group is what an ops person retries together (``fusion.jobs.actions.bulk_retry`` with the
group's own filter): a platform outage fails many jobs with one message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from fusion.jobs.models import Job, JobStatus
from fusion.jobs.selection import JobFilter, first_line

MAX_GROUPS = 200


@dataclass(frozen=True)
class FailureGroup:
    store_id: uuid.UUID | None
    job_type: str
    error_line: str
    count: int
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    sample_job_id: uuid.UUID

    @property
    def filter(self) -> JobFilter:
        """The filter that selects exactly this group's jobs (for a bulk retry)."""
        return JobFilter(
            status=JobStatus.FAILED,
            job_type=self.job_type,
            store_id=self.store_id,
            error_line=self.error_line,
        )


def failure_groups(session: Session, *, since: datetime) -> list[FailureGroup]:
    """The org's jobs failed (finished) at or after ``since``, grouped by store, job type and
    the first line of their last error, largest group first (at most ``MAX_GROUPS``)."""
    line = first_line(Job.last_error).label("error_line")
    newest = func.array_agg(aggregate_order_by(Job.id, Job.finished_at.desc()))[1]
    rows = session.execute(
        select(
            Job.store_id,
            Job.job_type,
            line,
            func.count().label("count"),
            func.min(Job.finished_at),
            func.max(Job.finished_at),
            newest,
        )
        .where(Job.status == JobStatus.FAILED, Job.finished_at >= since)
        .group_by(Job.store_id, Job.job_type, line)
        .order_by(func.count().desc(), func.max(Job.finished_at).desc())
        .limit(MAX_GROUPS)
    ).all()
    return [
        FailureGroup(
            store_id=store_id,
            job_type=job_type,
            error_line=error_line,
            count=int(count),
            first_failed_at=first,
            last_failed_at=last,
            sample_job_id=uuid.UUID(str(sample)),
        )
        for store_id, job_type, error_line, count, first, last, sample in rows
    ]
