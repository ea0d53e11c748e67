"""The dashboard: a card per store and the org's tiles, live over the event stream."""

from __future__ import annotations

import uuid

from flask import render_template
from sqlalchemy import select

from console import figures
from console.charts import Series, bars
from console.scope import bp, page, tx
from fusion.auth.models import Role
from fusion.stores.models import Store


@bp.get("/orgs/<uuid:org_id>/")
@page(Role.VIEWER)
def dashboard(org_id: uuid.UUID) -> str:
    stores = list(tx().scalars(select(Store).order_by(Store.name)))
    done, failed = figures.finished_per_hour(tx())
    return render_template(
        "console/dashboard.html",
        stores=stores,
        per_store=figures.per_store(tx()),
        jobs=figures.jobs_by_status(tx()),
        approvals_pending=figures.pending_approvals(tx()),
        out_of_stock=figures.out_of_stock(tx()),
        unknown_skus=figures.unknown_sku_lines(tx()),
        chart=bars(
            "Jobs finished per hour (24 h)",
            [Series("completed", done, "ok"), Series("failed", failed, "bad")],
        ),
    )
