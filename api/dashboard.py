"""The dashboard's reads: hourly series (jobs, throttles, sync lag) and process heartbeats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_smorest import Blueprint

from api.context import hub
from api.security import org_scope, tx
from fusion.auth.models import Role
from fusion.dashboard.hourly import hourly
from fusion.dashboard.runtime import Runtime, runtime
from schemas.dashboard import HourlyQuerySchema, HourlySchema, RuntimeSchema

blp = Blueprint("dashboard", __name__, url_prefix="/orgs", description="The dashboard's reads.")


@blp.get("/<uuid:org_id>/stats/hourly")
@blp.arguments(HourlyQuerySchema, location="query")
@blp.response(200, HourlySchema)
@org_scope(Role.VIEWER)
def hourly_stats(query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
    """Per clock hour since `since`: jobs finished and failed, calls throttled (in all and
    by store) and each store's inventory sync lag at the hour's end."""
    since = query["since"] or datetime.now(UTC) - timedelta(hours=24)
    return {"since": since, "hours": hourly(tx(), hub().redis, since=since)}


@blp.get("/<uuid:org_id>/runtime")
@blp.response(200, RuntimeSchema)
@org_scope(Role.VIEWER)
def runtime_view(org_id: uuid.UUID) -> Runtime:
    """The hub's workers (by Celery node name) and beat, each with its last heartbeat: the
    same for every org (liveness only, nothing of any job)."""
    return runtime(hub().redis)
