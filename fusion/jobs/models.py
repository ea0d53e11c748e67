"""Jobs and their logs: Postgres is the truth about every piece of work."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, TenantScoped, pg_enum


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class LogLevel(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Job(TenantScoped, Base):
    __tablename__ = "jobs"
    store_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    job_type: Mapped[str] = mapped_column(String(80))
    queue: Mapped[str] = mapped_column(String(40))
    status: Mapped[JobStatus] = mapped_column(
        pg_enum(JobStatus, "job_status"), server_default=JobStatus.PENDING.value
    )
    # Higher runs first: real-time inventory pushes pass bulk imports.
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    result: Mapped[dict[str, Any] | None]
    # {"done": n, "total": m} as a long job last reported it (JobContext.progress).
    progress: Mapped[dict[str, Any] | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("5"))
    scheduled_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    claimed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]  # when a Celery message was last published
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    parent_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_jobs_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_jobs_store_id_status", "store_id", "status"),
        # The claim path: due pending jobs, most urgent first.
        Index(
            "ix_jobs_due_pending",
            "queue",
            text("priority DESC"),
            "scheduled_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # Enqueue's backlog check: how many jobs an org already has waiting on a queue.
        Index(
            "ix_jobs_org_pending",
            "org_id",
            "queue",
            postgresql_where=text("status = 'pending'"),
        ),
        # The reaper: leases of claimed/running jobs.
        Index(
            "ix_jobs_active_lease",
            "lease_expires_at",
            postgresql_where=text("status IN ('claimed', 'running')"),
        ),
        # Retention (migration 0009): finished jobs, oldest first.
        Index(
            "ix_jobs_finished",
            "finished_at",
            postgresql_where=text("status IN ('completed', 'failed', 'cancelled')"),
        ),
        Index(
            "uq_jobs_org_id_idempotency_key",
            "org_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )


class JobLog(TenantScoped, Base):
    __tablename__ = "job_logs"
    # A line belongs to its job, and goes with it (also when its org goes: orgs → jobs →
    # job_logs cascade): no key of its own to orgs, which every line of every transition
    # would check and share-lock the org's row for (migration 0028).
    org_id: Mapped[uuid.UUID] = mapped_column(index=False)
    # Nor a key to jobs, which every line would check and share-lock its job's row for
    # (migration 0031): a trigger on jobs deletes a deleted job's lines, and a line is
    # written from its job's row (fusion.jobs.log.write, and the engine's functions).
    job_id: Mapped[uuid.UUID]
    level: Mapped[LogLevel] = mapped_column(pg_enum(LogLevel, "log_level"))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (Index("ix_job_logs_job_id_created_at", "job_id", "created_at"),)


class ItemStatus(enum.StrEnum):
    """What became of one item of a bulk job."""

    OK = "ok"
    FAILED = "failed"  # with the platform's (or the file's) reason
    SKIPPED = "skipped"


class JobItem(TenantScoped, Base):
    """The result of one item (a SKU, an imported row) of a bulk job, written by the job as
    each item is decided; the same item of the same job again replaces its result."""

    __tablename__ = "job_items"
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))  # the SKU, or the import row's line
    status: Mapped[ItemStatus] = mapped_column(pg_enum(ItemStatus, "job_item_status"))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (
        UniqueConstraint("job_id", "key"),
        Index("ix_job_items_job_id_status_created_at", "job_id", "status", "created_at"),
    )
