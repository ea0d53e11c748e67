"""Every request gets an id and one log line.

The id is the caller's ``X-Request-ID`` when it is a sane token (up to 128 letters, digits and
``-_.:``), else a new one; it is echoed back in ``X-Request-ID`` and bound to the log context
(``fusion.logs``) with the org of ``/orgs/<org>/...`` paths, so every line the request logs
names both. The request's line gives method, path (never the query string, which may carry
a secret), status and duration.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from fusion import logs

log = logging.getLogger("fusion.api.requests")

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(offered: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    if offered and _SANE.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def install(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(lambda _exc: logs.clear())


def _start() -> None:
    g.request_id = request_id(request.headers.get(HEADER))
    g.request_started = time.perf_counter()
    logs.start(request_id=g.request_id, org_id=(request.view_args or {}).get("org_id"))


def _finish(response: Response) -> Response:
    rid = g.get("request_id") or request_id(None)  # a request refused before _start ran
    response.headers[HEADER] = rid
    started = g.get("request_started")
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
    log.info(
        "%s %s %s", request.method, request.path, response.status_code,
        extra={"method": request.method, "path": request.path,
               "status": response.status_code, "duration_ms": elapsed_ms},
    )  # fmt: skip
    return response
