"""Jobs: list and filter, detail with logs, cancel, re-run, enqueue a capability; failures
grouped by what went wrong, and bulk retry/cancel."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, tx
from fusion.actions import jobs as actions
from fusion.auth.models import Role
from fusion.jobs import service as jobs
from fusion.jobs.failures import failure_groups
from fusion.jobs.models import Job
from fusion.jobs.selection import JobFilter
from fusion.stores.models import Store
from schemas.job_views import (
    BulkJobsSchema,
    BulkResultSchema,
    FailureGroupQuerySchema,
    FailureGroupsSchema,
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
        """Jobs, newest first, filtered by status, type, store, creation time (`since`) or
        text in the last error (`error`)."""
        names = ("status", "job_type", "store_id", "since", "error")
        matching = JobFilter(**{k: query[k] for k in names})
        return page(
            tx(),
            Job,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"store_id": query["store_id"]},
            stmt=select(Job).where(*matching.conditions()),
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
        return actions.request(
            tx(), access(), idempotency_key=idempotency_key, settings=hub().settings, **body
        )


@blp.route("/<uuid:org_id>/jobs/failure-groups")
class FailureGroups(MethodView):
    @blp.arguments(FailureGroupQuerySchema, location="query")
    @blp.response(200, FailureGroupsSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """Failed jobs grouped by store, job type and first line of the error, largest group
        first; each group's `retry` is the body of a bulk retry of exactly its jobs."""
        since = query["since"] or datetime.now(UTC) - timedelta(hours=24)
        groups = [
            {**asdict(g), "retry": {"filter": g.filter.as_dict()}}
            for g in failure_groups(tx(), since=since)
        ]
        return {"since": since, "groups": groups}


def _bulk(name: str, summary: str) -> None:
    @blp.arguments(BulkJobsSchema)
    @blp.response(200, BulkResultSchema)
    @org_scope(Role.OPERATOR)
    def view(body: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        where = JobFilter(**body["filter"]) if "filter" in body else None
        act = actions.bulk_retry if name == "retry" else actions.bulk_cancel
        done = act(tx(), access(), job_ids=body.get("job_ids"), where=where)
        return {**asdict(done), "count": len(done.changed)}

    view.__doc__ = summary
    view.__name__ = f"bulk_{name}_jobs"
    blp.post(f"/<uuid:org_id>/jobs/bulk-{name}")(view)


_bulk(
    "retry",
    f"Re-run failed or cancelled jobs, by ids or by filter (at most {actions.BULK_CAP}; "
    "`capped` says more matched). One audit entry for the batch.",
)
_bulk(
    "cancel",
    f"Cancel pending, claimed or running jobs, by ids or by filter (at most "
    f"{actions.BULK_CAP}; `capped` says more matched). One audit entry for the batch.",
)


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
        act = actions.cancel if name == "cancel" else actions.rerun
        return act(tx(), access(), job_id)

    view.__doc__ = summary
    view.__name__ = f"{name}_job"
    blp.post(f"/<uuid:org_id>/jobs/<uuid:job_id>/{name}")(view)


_transition("cancel", "Cancel a job (a running one stops at its next checkpoint).")
_transition("rerun", "Run a failed or cancelled job again.")
