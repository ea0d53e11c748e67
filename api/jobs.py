"""Jobs: list and filter, detail with logs, cancel, re-run, and enqueue a capability."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.audit.service import record
from fusion.auth.models import Role
from fusion.jobs import service as jobs
from fusion.jobs.models import Job
from fusion.security.redact import redact
from fusion.stores.models import Store
from schemas.job_views import (
    IdempotencyHeaderSchema,
    JobCreateSchema,
    JobDetailSchema,
    JobPageSchema,
    JobQuerySchema,
    JobSchema,
)

blp = Blueprint("jobs", __name__, url_prefix="/orgs", description="Jobs.")


@blp.route("/<uuid:org_id>/jobs")
class Jobs(MethodView):
    @blp.arguments(JobQuerySchema, location="query")
    @blp.response(200, JobPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Jobs, newest first, filtered by status, type or store."""
        filters = {k: query[k] for k in ("status", "job_type", "store_id")}
        return page(
            tx(),
            Job,
            limit=query["limit"],
            cursor=query["cursor"],
            filters=filters,
            references={"store_id": Store},
        )

    @blp.arguments(JobCreateSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(202, JobSchema)
    @org_scope(Role.OPERATOR)
    def post(
        self, body: dict[str, Any], org_id: uuid.UUID, idempotency_key: str | None = None
    ) -> Job:
        """Enqueue a job. The same Idempotency-Key returns the first job, never a second.
        Types only the hub enqueues are refused with 422 naming what to do instead: a
        listing change goes through the listing endpoints, where approval policies apply.
        Exact stock quantities (``payload.updates``) are the hub's own: 422; name ``skus``
        instead. A reconciliation's ``since`` before the store was connected is clamped to
        the connection (the job's log says so). The audit entry holds the payload."""
        job = jobs.enqueue_requested(
            tx(),
            org_id=org_id,
            idempotency_key=idempotency_key,
            created_by=access().user_id,
            settings=hub().settings,
            **body,
        )
        record(
            tx(),
            org_id=org_id,
            actor=access().principal,
            action="job.enqueue",
            resource_type="job",
            resource_id=job.id,
            # What was enqueued, as stored (after the type's clamps); secrets never kept.
            after={
                "job_type": job.job_type,
                "store_id": job.store_id,
                "payload": redact(job.payload),
            },
        )
        return job


@blp.route("/<uuid:org_id>/jobs/<uuid:job_id>")
class JobView(MethodView):
    @blp.response(200, JobDetailSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
        """One job and its log."""
        job = jobs.get_job(tx(), job_id)
        fields = JobSchema().fields
        return {
            **{name: getattr(job, name) for name in fields},
            "logs": jobs.job_logs(tx(), job_id),
        }


def _transition(name: str, summary: str) -> None:
    @blp.response(200, JobSchema)
    @org_scope(Role.OPERATOR)
    def view(org_id: uuid.UUID, job_id: uuid.UUID) -> Job:
        job = jobs.cancel(tx(), job_id) if name == "cancel" else jobs.rerun(tx(), job_id)
        record(
            tx(),
            org_id=org_id,
            actor=access().principal,
            action=f"job.{name}",
            resource_type="job",
            resource_id=job.id,
            after={"status": job.status},
        )
        return job

    view.__doc__ = summary
    view.__name__ = f"{name}_job"
    blp.post(f"/<uuid:org_id>/jobs/<uuid:job_id>/{name}")(view)


_transition("cancel", "Cancel a job (a running one stops at its next checkpoint).")
_transition("rerun", "Run a failed or cancelled job again.")
