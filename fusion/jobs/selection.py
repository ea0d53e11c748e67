"""Which jobs a filter names: the jobs list, the failure groups and the bulk actions share it.

A :class:`JobFilter` becomes SQL conditions on ``jobs`` (RLS keeps them to the session's org).
``error`` matches text anywhere in the last error (case-insensitive); ``error_line`` is the
exact first line of it, which is what a failure group is keyed by.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func

from fusion.jobs.models import Job, JobStatus


def first_line(column: Any) -> ColumnElement[str]:
    """The first line of a text column ('' for NULL), as Postgres computes it: the key of
    a failure group."""
    return func.split_part(func.coalesce(column, ""), "\n", 1)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Jobs by status, type, store, creation time (``since``: created at or after) and error
    text; None fields do not filter."""

    status: JobStatus | None = None
    job_type: str | None = None
    store_id: uuid.UUID | None = None
    since: datetime | None = None
    error: str | None = None
    error_line: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The SQL conditions of this filter, to AND together."""
        found: list[ColumnElement[bool]] = []
        if self.status is not None:
            found.append(Job.status == self.status)
        if self.job_type is not None:
            found.append(Job.job_type == self.job_type)
        if self.store_id is not None:
            found.append(Job.store_id == self.store_id)
        if self.since is not None:
            found.append(Job.created_at >= self.since)
        if self.error is not None:
            found.append(Job.last_error.ilike(f"%{_like_escaped(self.error)}%", escape="\\"))
        if self.error_line is not None:
            found.append(first_line(Job.last_error) == self.error_line)
        return found

    def as_dict(self) -> dict[str, Any]:
        """The filter as its set fields, JSON-able (for the audit entry and the answer)."""
        values = {
            "status": self.status.value if self.status else None,
            "job_type": self.job_type,
            "store_id": str(self.store_id) if self.store_id else None,
            "since": self.since.isoformat() if self.since else None,
            "error": self.error,
            "error_line": self.error_line,
        }
        return {k: v for k, v in values.items() if v is not None}
