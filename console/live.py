"""The console's live updates: the API's event stream of the org (``api.events``), opened
with the console's cookie session. A page listens with htmx's SSE extension and, on a ``job``
or ``approval`` event, fetches itself again and swaps the part that changed: the server
renders every figure, the event only says when to look.

Served by the API's process too (a few at once, ``api.events.API_PROCESS_STREAMS``), so the
pages are live on the one origin a person opens under ``fusion up``; behind a proxy, route
``/console/orgs/*/events`` to the streams process as ``/orgs/*/events`` is (docs/running.md
§5)."""

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
    return events.stream(org_id, access().principal, console=True)
