"""The item-level results of a bulk job, and re-running only its failed items."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.audit.service import record
from fusion.auth.models import Role
from fusion.jobs import items
from fusion.jobs import service as jobs
from fusion.jobs.models import Job, JobItem
from schemas.job_items import JobItemPageSchema, JobItemQuerySchema
from schemas.job_views import JobSchema

blp = Blueprint("job_items", __name__, url_prefix="/orgs", description="Job items.")


@blp.get("/<uuid:org_id>/jobs/<uuid:job_id>/items")
@blp.arguments(JobItemQuerySchema, location="query")
@blp.response(200, JobItemPageSchema)
@org_scope(Role.VIEWER)
def list_items(query: dict[str, Any], org_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
    """What became of each item of a bulk job (``ok``, ``failed`` with the platform's reason,
    ``skipped``), newest first, filtered by status."""
    jobs.get_job(tx(), job_id)
    return page(
        tx(),
        JobItem,
        limit=query["limit"],
        cursor=query["cursor"],
        filters={"job_id": job_id, "status": query["status"]},
    )


@blp.post("/<uuid:org_id>/jobs/<uuid:job_id>/retry-failed")
@blp.response(202, JobSchema)
@org_scope(Role.OPERATOR)
def retry_failed(org_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """A new job for the failed items of a finished bulk job only (its ``parent_job_id`` is
    the job). 409 when the job has not ended, has no item results or none failed."""
    child = items.retry_failed(tx(), job_id=job_id, created_by=access().user_id)
    record(
        tx(),
        org_id=org_id,
        actor=access().principal,
        action="job.retry_failed",
        resource_type="job",
        resource_id=child.id,
        after={"job_type": child.job_type, "parent_job_id": job_id},
    )
    return child
