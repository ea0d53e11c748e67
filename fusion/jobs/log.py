"""Writing and reading a job's log: every transition and every call of note, in order."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from fusion.jobs.models import Job, JobLog, LogLevel


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
    The ORM's pending changes are flushed first (the entry's job may be one of them). A job
    that is not there (deleted, or not ``org_id``'s) gets no entry."""
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


# Prebuilt (compiled once per process). The line is written from its job's row, read with
# the share lock a foreign key would take (job_logs has none, migration 0031): a job being
# deleted is waited for, and then gets no line.
_JOBS = Job.metadata.tables[Job.__tablename__]
_LOGS = JobLog.metadata.tables[JobLog.__tablename__]
_INSERT = insert(_LOGS).from_select(
    ["id", "org_id", "job_id", "level", "message", "data", "created_at", "updated_at"],
    select(
        bindparam("id", type_=_LOGS.c.id.type),
        _JOBS.c.org_id,
        _JOBS.c.id,
        bindparam("level", type_=_LOGS.c.level.type),
        bindparam("message", type_=_LOGS.c.message.type),
        bindparam("data", type_=_LOGS.c.data.type),
        func.clock_timestamp(),
        func.clock_timestamp(),
    )
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.org_id == bindparam("org_id"))
    .with_for_update(read=True, key_share=True),
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
