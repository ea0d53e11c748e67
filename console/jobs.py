"""Jobs: the filtered list (live), one job with its log, cancel and re-run."""

from __future__ import annotations

import uuid

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.pagination import page as keyset
from console import forms
from console.scope import access, back, bp, page, tx
from fusion.actions import jobs as actions
from fusion.auth.models import Role
from fusion.jobs import service as jobs
from fusion.jobs.models import Job, JobStatus
from fusion.security.redact import redact
from fusion.stores.models import Store


@bp.get("/orgs/<uuid:org_id>/jobs")
@page(Role.VIEWER)
def jobs_page(org_id: uuid.UUID) -> str:
    filters = {
        "status": forms.choice("status", JobStatus),
        "job_type": request.args.get("type") or None,
        "store_id": forms.an_id("store"),
    }
    found = keyset(
        tx(),
        Job,
        limit=forms.PAGE_SIZE,
        cursor=forms.cursor(),
        filters=filters,
        references={"store_id": Store},
    )
    stores = {s.id: s for s in tx().scalars(select(Store).order_by(Store.name))}
    types = sorted(tx().scalars(select(Job.job_type).distinct()))
    return render_template(
        "console/jobs.html",
        found=found,
        stores=stores,
        types=types,
        statuses=list(JobStatus),
        more=forms.query_without("cursor"),
    )


@bp.get("/orgs/<uuid:org_id>/jobs/<uuid:job_id>")
@page(Role.VIEWER)
def job_page(org_id: uuid.UUID, job_id: uuid.UUID) -> str:
    job = jobs.get_job(tx(), job_id)
    store = tx().get(Store, job.store_id) if job.store_id else None
    return render_template(
        "console/job.html",
        job=job,
        store=store,
        logs=jobs.job_logs(tx(), job_id),
        payload=redact(job.payload),
        result=redact(job.result) if job.result else None,
    )


@bp.post("/orgs/<uuid:org_id>/jobs/<uuid:job_id>/<any(cancel, rerun):action>")
@page(Role.OPERATOR)
def job_action(org_id: uuid.UUID, job_id: uuid.UUID, action: str) -> Response:
    act = actions.cancel if action == "cancel" else actions.rerun
    job = act(tx(), access(), job_id)
    flash(f"Job {action}: {job.status.value}.", "ok")
    return back("console.job_page", org_id=org_id, job_id=job_id)
