"""Sign-up, login, refresh-token rotation, logout and password change."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.context import hub
from api.quota import charge_login, charge_password_check
from api.security import claims, public, system_tx, user_scope
from api.throttle import Action, charge
from fusion.auth import mfa, sessions
from fusion.auth.errors import AuthenticationFailed, SecondFactorRequired
from schemas.auth import (
    LoginMfaSchema,
    LoginSchema,
    PasswordChangeSchema,
    RefreshSchema,
    SignupSchema,
    TokenPairSchema,
)
from schemas.orgs import OkSchema

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Logging in and out.")


@blp.post("/signup")
@blp.arguments(SignupSchema)
@blp.response(201, TokenPairSchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
@public
def signup(body: dict[str, Any]) -> sessions.TokenPair:
    """Create an account and log in (create an organisation, or accept an invitation from
    ``GET /me``, next). Throttled per client IP and in all (429 with Retry-After); an email
    that already has an account is a 409."""
    charge(Action.SIGNUP)
    with system_tx() as session:
        user = sessions.create_user(session, **body)
        return sessions.start_session(session, hub().settings, user)


@blp.post("/login")
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
@public
def login(body: dict[str, Any]) -> sessions.TokenPair:
    """Exchange email and password for an access token and a refresh token (at most
    10 attempts per email per minute, and throttled per client IP and in all: 429 with
    Retry-After beyond that). Once the person has multi-factor sign-in on, a right password
    gets a 401 problem of type ``mfa-required`` with ``mfa_required: true`` and a
    ``challenge`` for ``POST /auth/login/mfa`` instead."""
    charge(Action.LOGIN)
    charge_login(body["email"])
    with system_tx() as session:
        outcome = sessions.login(session, hub().settings, **body)
    # Outside the block: the challenge must commit before the 401 that carries it.
    if isinstance(outcome, mfa.MfaChallenge):
        raise SecondFactorRequired(outcome.challenge, outcome.expires_at)
    return outcome


@blp.post("/login/mfa")
@blp.arguments(LoginMfaSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@public
def login_mfa(body: dict[str, Any]) -> sessions.TokenPair:
    """Exchange a login challenge and a TOTP ``code`` (or a ``recovery_code``, each works
    once) for the token pair. A code is refused if its time step, or a later one, was already
    used; a challenge lasts 5 minutes and takes 5 wrong codes, and 10 wrong codes in a row
    lock the factor for 15 minutes. Every refusal is the same 401."""
    with system_tx() as session:
        pair = sessions.login_second_factor(session, hub().settings, **body)
    # Outside the block: a wrong code is counted, and that must commit before the 401.
    if pair is None:
        raise AuthenticationFailed("second factor refused")
    return pair


@blp.post("/refresh")
@blp.arguments(RefreshSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@public
def refresh(body: dict[str, Any]) -> sessions.TokenPair:
    """Use up a refresh token for a new pair. Presenting a used token again revokes the whole
    login session (it was stolen or replayed)."""
    with system_tx() as session:
        pair = sessions.rotate(session, hub().settings, body["refresh_token"])
    # Outside the block: a reuse revoked the family, and that must commit before the 401.
    if pair is None:
        raise AuthenticationFailed("refresh refused")
    return pair


@blp.post("/logout")
@blp.response(200, OkSchema)
@user_scope()
def logout() -> dict[str, str]:
    """End this login session: its refresh token and access tokens stop working."""
    with system_tx() as session:
        sessions.logout(session, claims())
    return {"status": "logged out"}


@blp.post("/password")
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@user_scope()
def change_password(body: dict[str, Any]) -> sessions.TokenPair:
    """Change your password. Every login session of yours ends (on every device); the answer
    is the token pair of a new one. A wrong current password is a 422 naming the field (at
    most 10 tries a minute: 429 with Retry-After beyond that)."""
    charge_password_check(claims().user_id)
    with system_tx() as session:
        return sessions.change_password(session, hub().settings, claims(), **body)
