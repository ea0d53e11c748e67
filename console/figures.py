"""The read-only figures the dashboard and store pages show, each one query in the request's
org-scoped transaction (row-level security keeps them to the org)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fusion.approvals.models import Approval, ApprovalStatus
from fusion.catalog.models import ProductVariant
from fusion.jobs.models import Job, JobStatus
from fusion.orders.models import OrderLine

BACKLOG = (JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.RUNNING)


@dataclass(frozen=True)
class StoreFigures:
    failed_24h: int
    backlog: int


def jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    found = {status.value: int(count) for status, count in rows}
    return {status.value: found.get(status.value, 0) for status in JobStatus}


def per_store(session: Session) -> dict[uuid.UUID, StoreFigures]:
    since = datetime.now(UTC) - timedelta(hours=24)
    failed = dict(
        session.execute(
            select(Job.store_id, func.count())
            .where(Job.status == JobStatus.FAILED, Job.updated_at >= since)
            .group_by(Job.store_id)
        ).all()
    )
    backlog = dict(
        session.execute(
            select(Job.store_id, func.count()).where(Job.status.in_(BACKLOG)).group_by(Job.store_id)
        ).all()
    )
    ids = {k for k in (*failed, *backlog) if k is not None}
    return {i: StoreFigures(int(failed.get(i, 0)), int(backlog.get(i, 0))) for i in ids}


def pending_approvals(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Approval)
            .where(Approval.status == ApprovalStatus.PENDING)
        )
        or 0
    )


def out_of_stock(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ProductVariant)
            .where(ProductVariant.available_quantity == 0, ProductVariant.deleting_at.is_(None))
        )
        or 0
    )


def unknown_sku_lines(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(OrderLine).where(OrderLine.variant_id.is_(None))
        )
        or 0
    )


def finished_per_hour(
    session: Session, *, hours: int = 24, store_id: uuid.UUID | None = None
) -> tuple[list[int], list[int]]:
    """Jobs completed and failed in each of the last ``hours`` hours, oldest first."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = now - timedelta(hours=hours)
    hour = func.date_trunc("hour", Job.finished_at)
    query = (
        select(hour, Job.status, func.count())
        .where(
            Job.finished_at >= start,
            Job.status.in_((JobStatus.COMPLETED, JobStatus.FAILED)),
        )
        .group_by(hour, Job.status)
    )
    if store_id is not None:
        query = query.where(Job.store_id == store_id)
    done, failed = [0] * hours, [0] * hours
    for at, status, count in session.execute(query).all():
        index = int((at.astimezone(UTC) - start).total_seconds() // 3600)
        if 0 <= index < hours:
            (done if status is JobStatus.COMPLETED else failed)[index] += int(count)
    return done, failed
