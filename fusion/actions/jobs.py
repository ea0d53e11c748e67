"""What a person does to jobs, audited in the same transaction: enqueue one, cancel or re-run
one, and retry or cancel many at once (by a list of ids or by a filter, capped).

The API and the console call these; the primitives they wrap (``fusion.jobs.service``) record
nothing, for the hub's own enqueues. Each call checks the caller's role itself (operator). A
bulk action writes one audit entry for the whole batch. Re-running a job needs no approval:
what it repeats was approved (or needed none) when it was first enqueued, as for one re-run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.audit.service import record
from fusion.auth.access import Access
from fusion.auth.models import Role
from fusion.config import Settings
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.jobs import service
from fusion.jobs.models import Job, JobStatus
from fusion.jobs.selection import JobFilter
from fusion.security.redact import redact

BULK_CAP = 500
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE = (JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.RUNNING)


def request(
    session: Session,
    access: Access,
    *,
    job_type: str,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
    **spec: Any,
) -> Job:
    """Enqueue a job a person asked for (``service.enqueue_requested``, which raises as it
    documents) and audit it (``job.enqueue``, with the payload as stored, redacted)."""
    access.require(Role.OPERATOR)
    job = service.enqueue_requested(
        session,
        org_id=access.org_id,
        job_type=job_type,
        idempotency_key=idempotency_key,
        created_by=access.user_id,
        settings=settings,
        **spec,
    )
    _audit(
        session,
        access,
        "job.enqueue",
        job.id,
        {"job_type": job.job_type, "store_id": job.store_id, "payload": redact(job.payload)},
    )
    return job


def cancel(session: Session, access: Access, job_id: uuid.UUID) -> Job:
    """``service.cancel`` (which raises as it documents), audited as ``job.cancel``."""
    access.require(Role.OPERATOR)
    job = service.cancel(session, job_id)
    _audit(session, access, "job.cancel", job.id, {"status": job.status})
    return job


def rerun(session: Session, access: Access, job_id: uuid.UUID) -> Job:
    """``service.rerun`` (which raises as it documents), audited as ``job.rerun``."""
    access.require(Role.OPERATOR)
    job = service.rerun(session, job_id)
    _audit(session, access, "job.rerun", job.id, {"status": job.status})
    return job


@dataclass(frozen=True)
class Skipped:
    job_id: uuid.UUID
    reason: str


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did: the jobs it changed, those it left (with why), and whether
    more jobs matched the filter than the cap let it take (``capped``: run it again)."""

    action: str
    changed: list[uuid.UUID]
    skipped: list[Skipped]
    capped: bool
    cap: int = BULK_CAP


def bulk_retry(
    session: Session,
    access: Access,
    *,
    job_ids: Sequence[uuid.UUID] | None = None,
    where: JobFilter | None = None,
) -> BulkResult:
    """Re-run failed and cancelled jobs: those of ``job_ids``, or the newest up to
    ``BULK_CAP`` that ``where`` matches (only failed or cancelled ones are taken). A listed
    job in another state, or not of this org, is skipped with its reason. One
    ``job.bulk_retry`` audit entry. Raises ValidationFailed (on ``job_ids``) for neither or
    both of ``job_ids`` and ``where``, or more than ``BULK_CAP`` ids; PermissionDenied below
    operator."""
    return _bulk(session, access, "retry", service.rerun, RETRYABLE, job_ids, where)


def bulk_cancel(
    session: Session,
    access: Access,
    *,
    job_ids: Sequence[uuid.UUID] | None = None,
    where: JobFilter | None = None,
) -> BulkResult:
    """Cancel pending, claimed and running jobs (a running one stops at its next
    checkpoint): those of ``job_ids``, or the newest up to ``BULK_CAP`` that ``where``
    matches. Otherwise as :func:`bulk_retry` (audited once as ``job.bulk_cancel``)."""
    return _bulk(session, access, "cancel", service.cancel, CANCELLABLE, job_ids, where)


def _bulk(
    session: Session,
    access: Access,
    action: str,
    change: Callable[[Session, uuid.UUID], Job],
    states: tuple[JobStatus, ...],
    job_ids: Sequence[uuid.UUID] | None,
    where: JobFilter | None,
) -> BulkResult:
    access.require(Role.OPERATOR)
    if (job_ids is None) == (where is None):
        raise ValidationFailed(fields={"job_ids": ["give either job_ids or filter, not both"]})
    capped = False
    if job_ids is not None:
        if len(job_ids) > BULK_CAP:
            raise ValidationFailed(fields={"job_ids": [f"at most {BULK_CAP} ids per call"]})
        targets = list(dict.fromkeys(job_ids))
    else:
        assert where is not None
        query = (
            select(Job.id)
            .where(*where.conditions(), Job.status.in_(states))
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(BULK_CAP + 1)
        )
        targets = list(session.scalars(query))
        capped = len(targets) > BULK_CAP
        targets = targets[:BULK_CAP]
    changed: list[uuid.UUID] = []
    skipped: list[Skipped] = []
    for job_id in targets:
        try:  # both refuse before they write anything: no savepoint needed
            changed.append(change(session, job_id).id)
        except (Conflict, NotFound) as exc:
            skipped.append(Skipped(job_id, str(exc)))
    after: Mapping[str, Any] = {
        "filter": where.as_dict() if where is not None else None,
        "job_ids": [str(i) for i in changed],
        "count": len(changed),
        "skipped": len(skipped),
        "capped": capped,
    }
    _audit(session, access, f"job.bulk_{action}", None, dict(after))
    return BulkResult(action=action, changed=changed, skipped=skipped, capped=capped)


def _audit(
    session: Session,
    access: Access,
    action: str,
    job_id: uuid.UUID | None,
    after: dict[str, Any],
) -> None:
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action=action,
        resource_type="job",
        resource_id=job_id,
        after=after,
    )
