"""Jobs: the filtered list (live) with bulk retry/cancel, one job with its log and progress,
cancel and re-run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.pagination import page as keyset
from console import forms
from console.scope import access, back, bp, page, tx
from fusion.actions import jobs as actions
from fusion.auth.models import Role
from fusion.errors import ValidationFailed
from fusion.jobs import service as jobs
from fusion.jobs.models import Job, JobStatus
from fusion.jobs.selection import JobFilter
from fusion.security.redact import redact
from fusion.stores.models import Store

BULK = {
    "retry-selected": ("retry", False),
    "cancel-selected": ("cancel", False),
    "retry-matching": ("retry", True),
    "cancel-matching": ("cancel", True),
}


def _since(source: str) -> datetime | None:
    raw = forms.text("since", source=source)
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(fields={"since": ["Not a date and time."]}) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _filter(source: str = "args") -> JobFilter:
    """The jobs list's filter, from the query string (or the bulk form's copy of it)."""
    return JobFilter(
        status=forms.choice("status", JobStatus, source=source),
        job_type=forms.text("type", source=source) or None,
        store_id=forms.an_id("store", source=source),
        since=_since(source),
        error=forms.text("error", source=source) or None,
    )


@bp.get("/orgs/<uuid:org_id>/jobs")
@page(Role.VIEWER)
def jobs_page(org_id: uuid.UUID) -> str:
    matching = _filter()
    found = keyset(
        tx(),
        Job,
        limit=forms.PAGE_SIZE,
        cursor=forms.cursor(),
        filters={"store_id": matching.store_id},
        stmt=select(Job).where(*matching.conditions()),
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
        cap=actions.BULK_CAP,
    )


@bp.post("/orgs/<uuid:org_id>/jobs/bulk")
@page(Role.OPERATOR)
def jobs_bulk(org_id: uuid.UUID) -> Response:
    """Retry or cancel the ticked jobs, or every job the list's filter matches (capped)."""
    what = request.form.get("do", "")
    if what not in BULK:
        raise ValidationFailed(fields={"do": [f"Must be one of: {', '.join(BULK)}."]})
    action, matching = BULK[what]
    act = actions.bulk_retry if action == "retry" else actions.bulk_cancel
    if matching:
        done = act(tx(), access(), where=_filter("form"))
    else:
        try:
            ids = [uuid.UUID(v) for v in request.form.getlist("job_ids")]
        except ValueError:
            raise ValidationFailed(fields={"job_ids": ["Not a valid id."]}) from None
        if not ids:
            raise ValidationFailed(fields={"job_ids": ["Tick at least one job."]})
        done = act(tx(), access(), job_ids=ids)
    more = f"; more than {done.cap} matched: run it again for the rest" if done.capped else ""
    flash(f"{action}: {len(done.changed)} job(s), {len(done.skipped)} skipped{more}.", "ok")
    return back("console.jobs_page", org_id=org_id)


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
