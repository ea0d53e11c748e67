"""Writing and reading a job's log: every transition and every call of note, in order."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from fusion.jobs.models import JobLog, LogLevel


def write(
    session: Session,
    org_id: uuid.UUID,
    job_id: uuid.UUID,
    message: str,
    level: LogLevel = LogLevel.INFO,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Add one entry to ``job_id``'s log in ``session``'s transaction (stamped with the
    wall clock, not the transaction start, so entries of one transaction keep their order).
    The ORM's pending changes are flushed first (the entry's job may be one of them)."""
    session.flush()
    session.execute(
        _INSERT,
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "job_id": job_id,
            "level": level,
            "message": message,
            "data": dict(data or {}),
        },
    )


# Prebuilt (every transition of every job writes an entry): compiled once per process.
_INSERT = insert(JobLog.metadata.tables[JobLog.__tablename__]).values(
    created_at=func.clock_timestamp(), updated_at=func.clock_timestamp()
)


def entries(session: Session, job_id: uuid.UUID, *, limit: int = 500) -> list[JobLog]:
    """``job_id``'s log, oldest first (at most ``limit`` entries); empty for a job of
    another org or no job at all."""
    rows = session.scalars(
        select(JobLog)
        .where(JobLog.job_id == job_id)
        .order_by(JobLog.created_at, JobLog.id)
        .limit(limit)
    )
    return list(rows)
