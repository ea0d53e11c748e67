"""The caller's own account, the organisations they belong to, and the invitations addressed
to their email (accepted or declined here)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.context import hub
from api.security import principal, system_tx, user_scope
from fusion.auth.models import OrgMember, User
from fusion.errors import NotFound
from fusion.orgs import invitations
from fusion.orgs import service as orgs
from fusion.orgs.models import Invitation
from schemas.auth import MeSchema
from schemas.orgs import InvitationSchema, MemberSchema

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
    invitee = principal()
    with system_tx() as session:
        org_id = invitations.invitation_org(session, invitee.actor_id, invitation_id)
    with hub().database.org_session(org_id) as session:
        member = invitations.accept(session, invitee, invitation_id)
        session.flush()
        session.refresh(member)
    return member


@blp.post("/invitations/<uuid:invitation_id>/decline")
@blp.response(200, InvitationSchema)
@blp.alt_response(404, response="NOT_FOUND")
@user_scope()
def decline_invitation(invitation_id: uuid.UUID) -> Invitation:
    """Turn the invitation down (404 unless it is addressed to your email; 409 once it is no
    longer open)."""
    invitee = principal()
    with system_tx() as session:
        org_id = invitations.invitation_org(session, invitee.actor_id, invitation_id)
    with hub().database.org_session(org_id) as session:
        invitation = invitations.decline(session, invitee, invitation_id)
        session.flush()
        session.refresh(invitation)
    return invitation
