"""How every console view runs: the blueprint, and the decorators that open the request's one
org-scoped transaction for the signed-in person, as ``api.security.org_scope`` does for the
API (row-level security underneath, membership and role read inside it, the org's request
quota charged), so the services apply roles, audit and approvals exactly as they do there.

``page(role)`` for a page (GET) or an action (POST): the view renders or redirects inside the
transaction; a service's refusal rolls it back and becomes the error page (403, 404) or, for
a form, a message on the page it came from (:func:`console.errors`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, redirect, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from api.context import hub
from api.quota import charge
from api.security import SCOPE_ATTR
from console import session as cookie
from fusion.auth.access import RANK, Access, ActorType, Principal, authorize
from fusion.auth.errors import AuthenticationFailed
from fusion.auth.models import Role
from fusion.orgs import service as orgs

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    # The static files are served by a view of ours (console.pages.static_file), declared
    # public like every other route.
)


class SignInNeeded(AuthenticationFailed):
    """No console session, or one that no longer holds: back to the sign-in page."""


def page(minimum: Role = Role.VIEWER, *, transaction: bool = True) -> Callable[[F], F]:
    """Run the view for a signed-in member holding ``minimum`` in the org of the URL.

    With ``transaction=False`` the checks commit before the view runs (a view that calls a
    platform must not hold a transaction while a remote host takes its time)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            org_id: uuid.UUID = kwargs["org_id"]
            with hub().database.org_session(org_id) as session:
                try:
                    person = cookie.person(session)
                except AuthenticationFailed as exc:
                    raise SignInNeeded(str(exc)) from None
                principal = Principal(ActorType.USER, person.user_id)
                access = authorize(session, principal, org_id, minimum)
                orgs.check_owner_mfa(session, access)
                charge(org_id)
                g.access, g.person = access, person
                if transaction:
                    g.session = session
                    try:
                        return view(*args, **kwargs)
                    finally:
                        g.pop("session", None)
            return view(*args, **kwargs)

        setattr(wrapper, SCOPE_ATTR, f"console:{minimum.value}")
        return wrapper  # type: ignore[return-value]

    return decorator


def signed_in_only(view: F) -> F:
    """A view for any signed-in person (no org: a system transaction, e.g. the org picker)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with hub().database.system_session() as session:
            try:
                g.person = cookie.person(session)
            except AuthenticationFailed as exc:
                raise SignInNeeded(str(exc)) from None
            g.session = session
            try:
                return view(*args, **kwargs)
            finally:
                g.pop("session", None)

    setattr(wrapper, SCOPE_ATTR, "console:person")
    return wrapper  # type: ignore[return-value]


def public(view: F) -> F:
    """A console view anyone may open (sign-in, static files)."""
    setattr(view, SCOPE_ATTR, "public")
    return view


def tx() -> Session:
    found: Session = g.session
    return found


def access() -> Access:
    found: Access = g.access
    return found


def can(role: Role) -> bool:
    """Whether the signed-in member holds ``role`` or higher here (what the page shows; the
    services refuse on their own whatever is sent)."""
    current: Access | None = g.get("access")
    return current is not None and RANK[current.role] >= RANK[role]


def back(default: str, **values: Any) -> Response:
    """303 to the page a form came from (its ``back`` field, a path of this console only), or
    to ``default``."""
    target = request.form.get("back", "")
    if not (target.startswith("/console/") and "//" not in target and "\\" not in target):
        target = url_for(default, **values)
    return redirect(target, code=303)
