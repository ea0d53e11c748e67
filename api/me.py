"""The caller's own account, the organisations they belong to, and their second factor."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.context import hub
from api.quota import charge_password_check
from api.security import claims, principal, system_tx, user_scope
from fusion.auth import mfa, sessions
from fusion.auth.models import User
from fusion.errors import NotFound
from fusion.orgs import service as orgs
from schemas.auth import (
    MeSchema,
    MfaStatusSchema,
    RecoveryCodesSchema,
    TotpCodeSchema,
    TotpDisableSchema,
    TotpEnrolmentSchema,
)

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller.")


@blp.get("")
@blp.response(200, MeSchema)
@user_scope()
def me() -> dict[str, Any]:
    """Who you are and your role in each of your organisations."""
    user_id = principal().user_id
    with system_tx() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return {"user": user, "orgs": orgs.memberships(session, user.id)}


@blp.get("/mfa")
@blp.response(200, MfaStatusSchema)
@user_scope()
def mfa_status() -> mfa.MfaStatus:
    """Whether your TOTP second factor is off, pending (enrolment started) or on, and how
    many recovery codes you have left."""
    with system_tx() as session:
        return mfa.status(session, sessions.active_user(session, claims()).id)


@blp.post("/mfa/totp")
@blp.response(201, TotpEnrolmentSchema)
@user_scope()
def start_totp() -> mfa.Enrolment:
    """Start enrolling an authenticator app: the secret and its ``otpauth://`` URI are shown
    now only. Nothing changes at login until you confirm with a code (409 if already on)."""
    with system_tx() as session:
        user = sessions.active_user(session, claims())
        return mfa.start_totp(session, hub().settings, user)


@blp.post("/mfa/totp/confirm")
@blp.arguments(TotpCodeSchema)
@blp.response(200, RecoveryCodesSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@user_scope()
def confirm_totp(body: dict[str, Any]) -> dict[str, list[str]]:
    """Turn multi-factor sign-in on with a first code from the app. The answer holds 10
    one-time recovery codes, shown now only. Your other login sessions end (this one stays);
    from now on a login needs a code too."""
    charge_password_check(claims().user_id)
    with system_tx() as session:
        user = sessions.active_user(session, claims())
        codes = mfa.confirm_totp(
            session, hub().settings, user, code=body["code"], keep_session=claims().session_id
        )
    return {"recovery_codes": codes}


@blp.post("/mfa/recovery-codes")
@blp.arguments(TotpCodeSchema)
@blp.response(200, RecoveryCodesSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@user_scope()
def new_recovery_codes(body: dict[str, Any]) -> dict[str, list[str]]:
    """A new set of 10 recovery codes for a current code; the old ones stop working."""
    charge_password_check(claims().user_id)
    with system_tx() as session:
        user = sessions.active_user(session, claims())
        codes = mfa.regenerate_recovery_codes(session, hub().settings, user, code=body["code"])
    return {"recovery_codes": codes}


@blp.delete("/mfa/totp")
@blp.arguments(TotpDisableSchema)
@blp.response(204)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@user_scope()
def disable_totp(body: dict[str, Any]) -> None:
    """Turn multi-factor sign-in off, with a current ``code`` or your ``password`` (checks
    count like logins: 10 a minute). The recovery codes go too."""
    charge_password_check(claims().user_id)
    with system_tx() as session:
        user = sessions.active_user(session, claims())
        mfa.disable_totp(session, hub().settings, user, **body)
