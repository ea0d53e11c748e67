"""The console's live updates: the API's event stream of the org (``api.events``), opened
with the console's cookie session. A page listens with htmx's SSE extension and, on a ``job``
or ``approval`` event, fetches itself again and swaps the part that changed: the server
renders every figure, the event only says when to look.

Served where the API's stream is: by the streams process (route ``/console/orgs/*/events``
there as ``/orgs/*/events`` is; docs/running.md §5), and answered 421 by the API's."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response

from api import events
from console.scope import access, page
from fusion.auth.models import Role

bp = Blueprint("console_live", __name__, url_prefix="/console")


@bp.get("/orgs/<uuid:org_id>/events")
@page(Role.VIEWER, transaction=False)
def org_events(org_id: uuid.UUID) -> Response:
    return events.stream(org_id, access().principal)
