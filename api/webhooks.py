"""``POST /webhooks/<platform>/<store_id>``: the platforms' deliveries. No caller auth: the
platform's signature over the raw body is the proof, checked in ``fusion.webhooks.service``.

The raw body is read (and capped) before anything parses it, because the signature covers
the exact bytes; every failed proof gets one identical 401 so the endpoint is no oracle of
which stores exist.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from api import problems
from api.context import hub
from api.security import public
from fusion.webhooks.service import MalformedDelivery, WebhookRefused, receive

blp = Blueprint("webhooks", __name__)
REFUSED_DETAIL = "The webhook delivery could not be verified."


@blp.post("/webhooks/<platform>/<uuid:store_id>")
@public
def deliver(platform: str, store_id: uuid.UUID) -> Response | tuple[dict[str, str], int]:
    """Verify, store once and enqueue a platform's webhook delivery; answers at once."""
    limit = hub().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return problems.problem(413, f"The body exceeds {limit} bytes.")
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:  # no Content-Length (chunked): the stream stops at the cap
        return problems.problem(413, f"The body exceeds {limit} bytes.")
    if len(body) > limit:
        return problems.problem(413, f"The body exceeds {limit} bytes.")
    try:
        receipt = receive(
            hub().database,
            hub().settings,
            platform=platform,
            store_id=store_id,
            headers=dict(request.headers),
            body=body,
        )
    except WebhookRefused:
        return problems.problem(401, REFUSED_DETAIL)
    except MalformedDelivery as exc:
        return problems.problem(400, "The delivery is not a valid event.", errors=exc.fields)
    return {"status": receipt.outcome}, 200
