"""Authentication and authorisation for every view, declared once per view with a decorator.

``org_scope(role)`` opens the request's one org-scoped transaction (RLS applies underneath),
authenticates the caller inside it, checks their membership and role in the org named by the
URL, applies the org's request quota, and only then runs the view. ``user_scope()`` does the
same for the caller's own account (no org). ``public()`` marks the few open endpoints. A test
walks ``app.url_map`` and fails on any view that declares none of them.

Each decorator also leaves its :class:`Guard` on the view: ``api.preflight`` reads it before
the request is routed to the view, and authenticates the caller (and checks their standing in
the org) before flask-smorest parses a single argument. The decorator takes that caller and
checks their membership again inside the view's own transaction, where the membership that
authorises the action is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from api.context import hub
from api.quota import charge
from fusion.auth import api_keys, sessions
from fusion.auth.access import Access, ActorType, Principal, authorize, grant, role_in_org
from fusion.auth.errors import AuthenticationFailed
from fusion.auth.models import Role
from fusion.auth.tokens import AccessClaims, decode_access_token
from fusion.orgs import service as orgs

F = TypeVar("F", bound=Callable[..., Any])
SecurityDoc = list[dict[str, list[str]]]
SECURITY: SecurityDoc = [{"bearerAuth": []}, {"apiKeyHeader": []}]
USER_SECURITY: SecurityDoc = [{"bearerAuth": []}]
SCOPE_ATTR = "__fusion_scope__"
GUARD_ATTR = "__fusion_guard__"


@dataclass(frozen=True)
class Guard:
    """What a view demands of its caller: an org role, a person (or key), or nothing."""

    kind: str  # "org", "user" or "public"
    minimum: Role | None = None
    allow_keys: bool = True
    people_only: bool = False

    def check(self, org_id: uuid.UUID | None) -> None:
        """Authenticate the current request's caller as this guard demands; raises
        AuthenticationFailed (401), or for an org guard NotFound (not a member: 404) and
        PermissionDenied (role too low: 403).

        An org guard does it in the org's transaction and leaves that transaction open for
        the view (:func:`org_scope` carries on in it, so the membership that authorises the
        action is the one read here, and the request costs one transaction, not two);
        :func:`end_held_transaction` ends it if the view never runs (bad arguments)."""
        if self.kind == "org" and org_id is not None and self.minimum is not None:
            stack = ExitStack()
            session = stack.enter_context(hub().database.org_session(org_id))
            try:
                principal, role = _authenticate(session, org_id=org_id)
                found = grant(principal, org_id, role, self.minimum, people_only=self.people_only)
            except BaseException:
                session.rollback()
                stack.close()
                raise
            g.held_transaction = _Held(org_id, stack, session, found)
            return
        if self.kind in ("org", "user"):
            with hub().database.system_session() as session:
                principal = authenticate(session, allow_keys=self.allow_keys)
        else:
            return
        g.preflight_principal = principal


@dataclass(frozen=True)
class _Held:
    """The org transaction the preflight opened and authorised the caller in."""

    org_id: uuid.UUID
    stack: ExitStack
    session: Session
    access: Access


def end_held_transaction(_error: BaseException | None = None) -> None:
    """End the transaction the preflight left open for a view that did not take it (its
    arguments were refused, or it failed before): rolled back, nothing of it is kept."""
    held: _Held | None = g.pop("held_transaction", None)
    if held is not None:
        held.session.rollback()
        held.stack.close()


@contextmanager
def _org_transaction(org_id: uuid.UUID) -> Iterator[tuple[Session, Access | None]]:
    """The request's org transaction: the preflight's, with the access it authorised, or a
    new one (no access yet) when the preflight left none for this org."""
    held: _Held | None = g.pop("held_transaction", None)
    if held is not None and held.org_id == org_id:
        with held.stack:
            yield held.session, held.access
        return
    if held is not None:
        held.stack.close()
    with hub().database.org_session(org_id) as session:
        yield session, None


def _authenticated(session: Session, *, allow_keys: bool = True) -> Principal:
    """The caller the preflight authenticated for this request (once is enough: a person or
    key the preflight let through a moment ago is still who they were); else authenticate."""
    found = g.pop("preflight_principal", None)
    if isinstance(found, Principal) and (allow_keys or found.actor_type is ActorType.USER):
        return found
    return authenticate(session, allow_keys=allow_keys)


def _presented() -> tuple[str, str]:
    """("jwt"|"key", value) from the Authorization or X-API-Key header. API keys in the query
    string are refused outright: URLs end up in logs."""
    if "api_key" in request.args or "access_token" in request.args:
        raise AuthenticationFailed("credentials in the query string")
    header = request.headers.get("Authorization", "")
    key_header = request.headers.get("X-API-Key", "")
    if header and key_header:
        raise AuthenticationFailed("two credentials")
    if key_header:
        return "key", key_header.strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed("no bearer credentials")
    value = value.strip()
    return ("key" if value.startswith(api_keys.PREFIX) else "jwt"), value


def authenticate(session: Session, *, allow_keys: bool = True) -> Principal:
    """The caller of the current request; raises AuthenticationFailed."""
    principal, _ = _authenticate(session, allow_keys=allow_keys)
    return principal


def _authenticate(
    session: Session, *, allow_keys: bool = True, org_id: uuid.UUID | None = None
) -> tuple[Principal, Role | None]:
    """:func:`authenticate`; with ``org_id`` (``session`` scoped to it), also the caller's
    role there (None: not a member), a person's read in the same query as their account."""
    kind, value = _presented()
    if kind == "key":
        if not allow_keys:
            raise AuthenticationFailed("api keys cannot act as a person")
        identity = api_keys.authenticate(session, value)
        g.api_key_id = identity.key_id
        principal = Principal(
            ActorType.API_KEY,
            identity.key_id,
            identity.org_id,
            identity.role,
            key_creator_id=identity.created_by,
        )
        return principal, None if org_id is None else role_in_org(session, principal, org_id)
    claims = decode_access_token(hub().settings.jwt_secret, value)
    role = None
    if org_id is None:
        sessions.active_user(session, claims)
    else:
        _, role = sessions.active_member(session, claims, org_id)
    g.claims = claims
    return Principal(ActorType.USER, claims.user_id), role


def _document(wrapper: Any, security: list[dict[str, list[str]]], codes: tuple[int, ...]) -> None:
    doc = deepcopy(getattr(wrapper, "_apidoc", {}))
    doc.setdefault("manual_doc", {})["security"] = security
    responses = doc.setdefault("response", {}).setdefault("responses", {})
    names = {
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "CONFLICT",
        429: "TOO_MANY_REQUESTS",
    }
    for code in codes:
        responses.setdefault(code, []).append(names[code])
    wrapper._apidoc = doc


def org_scope(
    minimum: Role, *, people_only: bool = False, transaction: bool = True
) -> Callable[[F], F]:
    """Run the view in the org's transaction once the caller holds ``minimum`` in the org
    (and, when ``people_only``, is a person: API keys get 403 saying why).

    With ``transaction=False`` the checks commit before the view runs, and the view runs with
    no transaction open (``tx()`` is unavailable): for a view that calls a platform, which
    must not hold a transaction (and its locks) while a remote host takes its time."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            org_id: uuid.UUID = kwargs["org_id"]
            with _org_transaction(org_id) as (session, authorised):
                if authorised is not None:
                    access = authorised  # read in this very transaction by the preflight
                    principal = access.principal
                else:
                    principal = _authenticated(session)
                    access = authorize(session, principal, org_id, minimum, people_only=people_only)
                orgs.check_owner_mfa(session, access)
                charge(org_id)
                if principal.actor_type is ActorType.API_KEY:
                    api_keys.touch(session, principal.actor_id)
                g.access = access
                if transaction:
                    g.session = session
                    try:
                        result = view(*args, **kwargs)
                        _load_server_values(session)
                        return result
                    finally:
                        g.pop("session", None)
            return view(*args, **kwargs)

        setattr(wrapper, SCOPE_ATTR, f"org:{minimum.value}" + (":people" if people_only else ""))
        setattr(wrapper, GUARD_ATTR, Guard("org", minimum, people_only=people_only))
        _document(wrapper, SECURITY, (401, 403, 404, 409, 429))
        return wrapper  # type: ignore[return-value]

    return decorator


def _load_server_values(session: Session) -> None:
    """Read back columns the database filled (timestamps, defaults) while the transaction is
    open: the response is rendered after it ends."""
    session.flush()
    for obj in list(session.identity_map.values()):
        if inspect(obj).expired_attributes:
            session.refresh(obj)


def user_scope(*, allow_keys: bool = False) -> Callable[[F], F]:
    """Run the view for an authenticated person (no org: a system transaction)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with hub().database.system_session() as session:
                g.principal = _authenticated(session, allow_keys=allow_keys)
            return view(*args, **kwargs)

        setattr(wrapper, SCOPE_ATTR, "user")
        setattr(wrapper, GUARD_ATTR, Guard("user", allow_keys=allow_keys))
        _document(wrapper, SECURITY if allow_keys else USER_SECURITY, (401, 409))
        return wrapper  # type: ignore[return-value]

    return decorator


def public(view: F) -> F:
    """An endpoint anyone may call (sign-up, login, probes)."""
    setattr(view, SCOPE_ATTR, "public")
    setattr(view, GUARD_ATTR, Guard("public"))
    doc = deepcopy(getattr(view, "_apidoc", {}))
    doc.setdefault("manual_doc", {})["security"] = []
    view._apidoc = doc  # type: ignore[attr-defined]
    return view


def tx() -> Session:
    """The current request's org-scoped session."""
    session: Session = g.session
    return session


def access() -> Access:
    found: Access = g.access
    return found


def principal() -> Principal:
    found: Principal = g.principal
    return found


def claims() -> AccessClaims:
    found: AccessClaims = g.claims
    return found


@contextmanager
def system_tx() -> Iterator[Session]:
    """A transaction with no org (global tables: users, refresh tokens)."""
    with hub().database.system_session() as session:
        yield session
