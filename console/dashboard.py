"""The dashboard: what needs attention (failed jobs grouped, each with Retry all), a card per
store (rate-limit bucket, throttles, last sync and order pull), the hub's processes, the org's
tiles and hourly charts, live over the event stream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.context import hub
from console import figures, forms
from console.charts import Series, bars
from console.scope import access, back, bp, page, tx
from fusion.actions import jobs as actions
from fusion.auth.models import Role
from fusion.dashboard.hourly import hourly
from fusion.dashboard.runtime import runtime
from fusion.jobs.failures import failure_groups
from fusion.jobs.models import JobStatus
from fusion.jobs.selection import JobFilter
from fusion.stores import service as stores_service
from fusion.stores.models import Store

ATTENTION_HOURS = 24


@bp.get("/orgs/<uuid:org_id>/")
@page(Role.VIEWER)
def dashboard(org_id: uuid.UUID) -> str:
    stores = list(tx().scalars(select(Store).order_by(Store.name)))
    done, failed = figures.finished_per_hour(tx())
    now = datetime.now(UTC)
    hours = hourly(tx(), hub().redis, since=now - timedelta(hours=23))
    throttles = [h.throttles or 0 for h in hours]
    lag = [
        Series(
            s.name,
            [round((h.sync_lag_s.get(str(s.id)) or 0) / 60) for h in hours],
            f"series-{i % 4}",
        )
        for i, s in enumerate(stores)
    ]
    return render_template(
        "console/dashboard.html",
        stores=stores,
        names={s.id: s.name for s in stores},
        per_store=figures.per_store(tx()),
        rate_limits={s.id: stores_service.rate_limit(s, hub().redis) for s in stores},
        groups=failure_groups(tx(), since=now - timedelta(hours=ATTENTION_HOURS)),
        runtime=runtime(hub().redis),
        throttles_unknown=any(h.throttles is None for h in hours),
        jobs=figures.jobs_by_status(tx()),
        approvals_pending=figures.pending_approvals(tx()),
        out_of_stock=figures.out_of_stock(tx()),
        unknown_skus=figures.unknown_sku_lines(tx()),
        chart=bars(
            "Jobs finished per hour (24 h)",
            [Series("completed", done, "ok"), Series("failed", failed, "bad")],
        ),
        throttle_chart=bars(
            "Throttled calls per hour (24 h)", [Series("throttled", throttles, "bad")]
        ),
        lag_chart=bars("Inventory sync lag per store, minutes (24 h)", lag),
    )


@bp.post("/orgs/<uuid:org_id>/jobs/failure-groups/retry")
@page(Role.OPERATOR)
def retry_group(org_id: uuid.UUID) -> Response:
    """Retry all of one failure group (its store, job type and first error line)."""
    where = JobFilter(
        status=JobStatus.FAILED,
        job_type=forms.text("job_type", required=True),
        store_id=forms.an_id("store_id", source="form"),
        error_line=request.form.get("error_line", ""),
    )
    done = actions.bulk_retry(tx(), access(), where=where)
    more = " (more matched: retry again)" if done.capped else ""
    flash(f"Retried {len(done.changed)} job(s){more}.", "ok")
    return back("console.dashboard", org_id=org_id)
