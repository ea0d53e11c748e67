"""Every error leaves the API as ``application/problem+json`` (RFC 9457), with field-level
``errors`` where there are any. Nothing internal (tracebacks, SQL, secrets) is ever shown."""

from __future__ import annotations

import http
import logging
from typing import Any

from flask import Response, json
from werkzeug.exceptions import HTTPException

from fusion.auth.errors import AuthenticationFailed, SecondFactorRequired
from fusion.errors import (
    Conflict,
    FusionError,
    NotFound,
    PermissionDenied,
    UnsupportedCapability,
    ValidationFailed,
)

log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"
UNAUTHORIZED_DETAIL = "Authentication required: the credentials are missing, invalid or expired."


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
    kind: str | None = None,
) -> Response:
    """A problem+json response for ``status``, with RFC 9457 extension members (what the
    client needs to act on it, e.g. the current figure) beside the standard ones; ``kind``
    names a problem type narrower than the status (``mfa-required``)."""
    title = http.HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"https://fusion-stage-hub.dev/problems/{kind or status}",
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = errors
    for name, value in (extensions or {}).items():
        body.setdefault(name, value)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fusion"'
    return response


def unauthorized() -> Response:
    """The one 401 answer, identical for every authentication failure."""
    return problem(401, UNAUTHORIZED_DETAIL)


def from_http_exception(error: HTTPException) -> Response:
    """werkzeug and flask-smorest errors (404, 405, 413, webargs' 422, ...) as problems."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    headers = dict(data.get("headers") or {})
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(sorted(error.valid_methods))  # type: ignore[attr-defined]
    if status == 422 and errors:
        errors = _flatten_locations(errors)
        detail = "The request is invalid; see errors."
    elif status >= 500:
        detail = None
    else:
        detail = data.get("message") or error.description
    return problem(status, detail, errors=errors, headers=headers)


def _flatten_locations(errors: dict[str, Any]) -> dict[str, Any]:
    """webargs nests messages by location ({"json": {"name": [...]}}); clients want fields.
    Only one location is parsed per schema, so flattening loses nothing useful."""
    flat: dict[str, Any] = {}
    for location, messages in errors.items():
        if isinstance(messages, dict):
            flat.update(messages)
        else:
            flat[location] = messages
    return flat


def from_fusion_error(error: FusionError) -> Response:
    """Domain errors mapped onto HTTP: NotFound 404, PermissionDenied 403, Conflict 409,
    ValidationFailed / UnsupportedCapability 422, AuthenticationFailed the generic 401, and
    SecondFactorRequired a 401 of type ``mfa-required`` carrying the login challenge."""
    if isinstance(error, SecondFactorRequired):
        extensions = {
            "mfa_required": True,
            "challenge": error.challenge,
            "challenge_expires_at": error.expires_at.isoformat(),
        }
        return problem(401, str(error), extensions=extensions, kind="mfa-required")
    if isinstance(error, AuthenticationFailed):
        return unauthorized()
    if isinstance(error, NotFound):
        return problem(404, str(error))
    if isinstance(error, PermissionDenied):
        return problem(403, str(error))
    if isinstance(error, Conflict):
        details = dict(error.details)
        headers = {"ETag": str(details["etag"])} if "etag" in details else None
        return problem(409, str(error), extensions=details, headers=headers)
    if isinstance(error, ValidationFailed):
        return problem(422, str(error), errors=error.fields)
    if isinstance(error, UnsupportedCapability):
        return problem(422, str(error), errors={"job_type": [str(error)]})
    log.error("unmapped domain error %s", type(error).__name__)
    return problem(500)


def from_unexpected(error: Exception) -> Response:
    """A bug: logged with its traceback on the server, a bare 500 for the client."""
    log.exception("unhandled error", exc_info=error)
    return problem(500)
