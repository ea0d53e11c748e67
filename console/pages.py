"""The console's wiring: its views, its error pages, the CSRF check and what every template
may use. Refusals by the services become pages: 404 and 403 as pages of their own, and a
refused form (a bad value, a conflict) a message on the page it was sent from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from api.quota import QuotaExceeded
from console import session as cookie
from console.scope import SignInNeeded, bp, can, public, tx
from fusion.auth.models import Role
from fusion.config import Settings
from fusion.errors import Conflict, FusionError, NotFound, PermissionDenied, ValidationFailed
from fusion.orgs import service as orgs
from fusion.ratelimit.slots import SlotsTaken

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def register(app: Flask, settings: Settings) -> None:
    # The views register themselves on the blueprint when imported.
    from console import (  # noqa: F401
        account,
        activity,
        approvals,
        catalog,
        dashboard,
        jobs,
        settings_page,
        stores,
    )

    if settings.dev:
        from console import sandbox  # noqa: F401
    app.register_blueprint(bp)


@bp.get("/static/<path:filename>")
@public
def static_file(filename: str) -> Response:
    return send_from_directory(STATIC, filename)


@bp.before_request
def _csrf() -> None:
    cookie.check_csrf()


@bp.app_template_global()
def csrf_token() -> str:
    return cookie.csrf_token()


@bp.app_template_global()
def my_orgs() -> list[orgs.Membership]:
    """The signed-in person's orgs, for the switcher (read in the request's transaction)."""
    person = g.get("person")
    return orgs.memberships(tx(), person.user_id) if person and "session" in g else []


@bp.app_template_filter()
def zip_pairs(values: Any) -> list[tuple[str, str]]:
    return [(str(v), str(v)) for v in values]


@bp.app_template_filter()
def store_pairs(stores: Any) -> list[tuple[str, str]]:
    return [(str(s.id), s.name) for s in stores]


@bp.context_processor
def _context() -> dict[str, Any]:
    return {
        "can": can,
        "Role": Role,
        "person": g.get("person"),
        "access": g.get("access"),
        "has_sandbox": "console.sandbox_page" in current_app.view_functions,
    }


@bp.errorhandler(SignInNeeded)
def _sign_in(error: SignInNeeded) -> Response:
    cookie.end()
    nxt = request.path if request.method == "GET" else ""
    return redirect(url_for("console.login", next=nxt or None), code=303)


@bp.errorhandler(FusionError)
def _refused(error: FusionError) -> Any:
    if isinstance(error, NotFound):
        return _error_page(404, str(error))
    if isinstance(error, PermissionDenied):
        return _error_page(403, str(error))
    if isinstance(error, QuotaExceeded | SlotsTaken):
        page, status = _error_page(429, str(error))
        return page, status, {"Retry-After": str(error.retry_after_s)}
    if isinstance(error, ValidationFailed | Conflict) and request.method == "POST":
        flash(_message(error), "error")
        target = request.form.get("back", "")
        if target.startswith("/console/") and "//" not in target:
            return redirect(target, code=303)
        return redirect(request.referrer or url_for("console.home"), code=303)
    if isinstance(error, ValidationFailed | Conflict):
        return _error_page(422, _message(error))
    log.error("console: unmapped domain error %s", type(error).__name__)
    return _error_page(500, "Something went wrong.")


@bp.errorhandler(HTTPException)
def _http(error: HTTPException) -> Any:
    return _error_page(error.code or 500, error.description or error.name)


def _message(error: FusionError) -> str:
    if isinstance(error, ValidationFailed) and error.fields:
        parts = [
            f"{name}: {'; '.join(map(str, reasons))}" for name, reasons in error.fields.items()
        ]
        return "Refused. " + " · ".join(parts)
    return str(error)


def _error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("console/error.html", status=status, message=message), status
