"""The console's sign-in: a login session of the same kind as the API's, kept in a cookie.

Signing in starts a refresh-token family (``fusion.auth.sessions``) exactly as ``POST
/auth/login`` does; the cookie (Flask's signed session: HttpOnly, ``SameSite=Strict``,
``Secure`` in production) holds only the person's id, the family's id and when it began, never
a token. Every request checks the family again (:func:`person`), so logout, a password change
(which revokes every family of the person) and the end of the family's lifetime end the
console session at its next request; membership is read in the org's own transaction, so a
removed member is refused there.

CSRF: a random token bound to the cookie session, sent back in every form (``csrf_token``) and
every htmx request (the ``X-CSRF-Token`` header the page sets); any other POST is refused.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask, abort, request, session
from sqlalchemy.orm import Session

from api.context import hub
from fusion.auth import sessions
from fusion.auth.errors import AuthenticationFailed
from fusion.auth.tokens import AccessClaims, decode_access_token
from fusion.config import Settings

COOKIE = "fusion_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Person:
    """Who is signed in to the console, and the login session they hold."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    email: str

    def claims(self) -> AccessClaims:
        """The login session as the API's token claims name it (for the session services)."""
        return AccessClaims(self.user_id, self.session_id, "console", datetime.now(UTC))


def configure(app: Flask, settings: Settings) -> None:
    """The cookie: signed with a key derived from the hub's JWT secret (every process of the
    hub, the streams process too, reads the same cookie)."""
    app.secret_key = hmac.digest(settings.jwt_secret.encode(), b"fusion-console-cookie", "sha256")
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.env == "production",
        SESSION_COOKIE_PATH="/",
    )


def begin(pair: sessions.TokenPair, email: str) -> None:
    """Keep the login session ``pair`` was issued for in the cookie (a fresh cookie: whatever
    it held before, a half-done sign-in included, goes)."""
    claims = decode_access_token(hub().settings.jwt_secret, pair.access_token)
    session.clear()
    session.update(
        uid=str(claims.user_id),
        sid=str(claims.session_id),
        started=datetime.now(UTC).isoformat(),
        email=email,
        csrf=secrets.token_urlsafe(32),
    )


def end() -> None:
    """Forget the login session (sign-out, or one found revoked); a sign-in in progress (its
    second-factor challenge) stays."""
    for key in ("uid", "sid", "started", "email"):
        session.pop(key, None)


def signed_in() -> Person | None:
    """The person the cookie names, unchecked (the database check is :func:`person`)."""
    try:
        return Person(uuid.UUID(session["uid"]), uuid.UUID(session["sid"]), session["email"])
    except (KeyError, ValueError, TypeError):
        return None


def person(db: Session) -> Person:
    """The signed-in person, if their login session still holds (not revoked, not older than
    ``session_max_age_days``, the account active); raises AuthenticationFailed otherwise."""
    found = signed_in()
    if found is None:
        raise AuthenticationFailed("not signed in")
    try:
        started = datetime.fromisoformat(session["started"])
    except (KeyError, ValueError, TypeError):
        raise AuthenticationFailed("not signed in") from None
    if datetime.now(UTC) - started >= timedelta(days=hub().settings.session_max_age_days):
        raise AuthenticationFailed("login session too old")
    sessions.active_user(db, found.claims())
    return found


def csrf_token() -> str:
    """The token forms carry (made on first use, e.g. by the sign-in form)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse (400) a state-changing request whose token does not match the cookie's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, "The form's CSRF token is missing or stale: reload the page and try again.")
