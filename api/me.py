"""The caller's own account, the organisations they belong to, their second factor, and the
invitations addressed to their email (accepted or declined here)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from api.context import hub
from api.quota import charge_password_check
from api.security import claims, principal, system_tx, user_scope
from fusion.auth import mfa, sessions
from fusion.auth.access import Principal
from fusion.auth.models import OrgMember, User
from fusion.errors import NotFound
from fusion.orgs import invitations
from fusion.orgs import service as orgs
from fusion.orgs.models import Invitation
from schemas.auth import (
    MeSchema,
    MfaStatusSchema,
    RecoveryCodesSchema,
    TotpCodeSchema,
    TotpDisableSchema,
    TotpEnrolmentSchema,
)
from schemas.orgs import InvitationSchema, MemberSchema

T = TypeVar("T")

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller.")


@blp.get("")
@blp.response(200, MeSchema)
@user_scope()
def me() -> dict[str, Any]:
    """Who you are, your role in each of your organisations, and the open invitations
    addressed to your email."""
    user_id = principal().user_id
    with system_tx() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return {
            "user": user,
            "orgs": orgs.memberships(session, user.id),
            "invitations": invitations.open_invitations(session, user.id),
        }


@blp.post("/invitations/<uuid:invitation_id>/accept")
@blp.response(200, MemberSchema)
@blp.alt_response(404, response="NOT_FOUND")
@user_scope()
def accept_invitation(invitation_id: uuid.UUID) -> OrgMember:
    """Join the organisation with the invitation's role; the answer is your membership. 404
    unless the invitation is addressed to your email; 409 once it is no longer open (answered,
    cancelled or expired) or if you are already a member."""
    return _answer(invitations.accept, invitation_id)


@blp.post("/invitations/<uuid:invitation_id>/decline")
@blp.response(200, InvitationSchema)
@blp.alt_response(404, response="NOT_FOUND")
@user_scope()
def decline_invitation(invitation_id: uuid.UUID) -> Invitation:
    """Turn the invitation down (404 unless it is addressed to your email; 409 once it is no
    longer open)."""
    return _answer(invitations.decline, invitation_id)


def _answer(how: Callable[[Session, Principal, uuid.UUID], T], invitation_id: uuid.UUID) -> T:
    """Answer an invitation addressed to the caller, in the org's own transaction (found
    through the invitee's narrow look-up, which is 404 for anyone else's)."""
    invitee = principal()
    with system_tx() as session:
        org_id = invitations.invitation_org(session, invitee.actor_id, invitation_id)
    with hub().database.org_session(org_id) as session:
        answered = how(session, invitee, invitation_id)
        session.flush()
        session.refresh(answered)
    return answered


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
