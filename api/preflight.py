"""What every request passes before a view parses anything of it, in this order:

1. its caller, as the view's declared scope demands (``api.security.Guard``): an anonymous
   caller gets the one 401, a non-member of the org in the URL the 404 of a missing org, a
   role too low the 403, whatever the body or query holds. For an org view this happens in
   the org's transaction, which the view then carries on in (one transaction a request);
   :func:`api.security.end_held_transaction` rolls it back if the view never takes it;
2. its body: larger than ``FUSION_MAX_BODY_BYTES`` is a 413, JSON nested deeper than
   :data:`MAX_JSON_DEPTH` a 400 (Python's parser would recurse until it fails, a 500), for
   every endpoint that takes a body, the webhook intake included.

One ``before_request`` hook, so no view can forget it and no decorator order matters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api import problems
from api.context import hub
from api.security import GUARD_ATTR, Guard, end_held_transaction

MAX_JSON_DEPTH = 64
# A string literal, or an unterminated one up to the end: matching to the end keeps the scan
# linear on a body of escaped quotes that never closes.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _byte in b"[{":
    _STEP[_byte] = 1
for _byte in b"]}":
    _STEP[_byte] = -1


STREAMED_ATTR = "__fusion_streamed_upload__"


def install(app: Flask) -> None:
    """Run the checks before every request; registered before any other hook. An org
    guard's transaction, left open for the view, ends with the request if the view did not
    take it."""
    app.before_request(_preflight)
    app.teardown_request(end_held_transaction)


def _preflight() -> Response | None:
    guard = _guard()
    if guard is not None:
        org_id = (request.view_args or {}).get("org_id")
        guard.check(org_id if isinstance(org_id, uuid.UUID) else None)
    cap = _upload_cap()
    if cap is not None:
        # The view reads the body as a stream (a spreadsheet, an image): not read here, its
        # own cap.
        request.max_content_length = cap(hub().settings)
        return None
    return _body_problem()


def streamed_upload(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that reads its body as a stream, up to ``settings.import_max_bytes``."""
    setattr(view, STREAMED_ATTR, lambda settings: settings.import_max_bytes)
    return view


# Room for a multipart body's boundaries and headers around a file of the largest size.
MULTIPART_SLACK = 64 * 1024


def image_upload(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that reads a multipart image upload of up to ``settings.image_max_bytes``
    itself (so a file just too large is the view's 422, not a 413)."""
    setattr(view, STREAMED_ATTR, lambda settings: settings.image_max_bytes + MULTIPART_SLACK)
    return view


def _upload_cap() -> Callable[[Any], int] | None:
    if request.endpoint is None or request.routing_exception is not None:
        return None
    seen: Any = current_app.view_functions.get(request.endpoint)
    view_class = getattr(seen, "view_class", None)
    if view_class is not None:  # a MethodView: the handler of this method
        seen = getattr(view_class, request.method.lower(), None)
    for _ in range(20):
        if seen is None:
            return None
        cap = getattr(seen, STREAMED_ATTR, None)
        if cap is not None:
            return cap
        seen = getattr(seen, "__wrapped__", None)
    return None


def _guard() -> Guard | None:
    """The guard of the view this request is routed to (None when it routes nowhere)."""
    if request.endpoint is None or request.routing_exception is not None:
        return None
    view: Any = current_app.view_functions.get(request.endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # a MethodView: the handler of this method
        method = request.method.lower()
        view = getattr(view_class, "get" if method == "head" else method, None)
    return _declared(view)


def _declared(view: Callable[..., Any] | None) -> Guard | None:
    seen: Any = view
    for _ in range(20):  # through the wrappers flask-smorest puts outside the scope
        if seen is None:
            return None
        guard = getattr(seen, GUARD_ATTR, None)
        if isinstance(guard, Guard):
            return guard
        seen = getattr(seen, "__wrapped__", None)
    return None


def _body_problem() -> Response | None:
    limit = hub().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return problems.problem(413, f"The body exceeds {limit} bytes.")
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:  # no Content-Length (chunked): the stream stops at the cap
        return problems.problem(413, f"The body exceeds {limit} bytes.")
    if nests_too_deep(body):
        return problems.problem(
            400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."
        )
    return None


def nests_too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest deeper than MAX_JSON_DEPTH in ``body`` (brackets inside
    strings not counted). Any bytes are accepted, JSON or not: it bounds what a JSON parser
    would recurse into, before parsing, in time linear in the body."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False  # too few brackets to nest that deep
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH
