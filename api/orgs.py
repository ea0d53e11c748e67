"""Organisations, their members and the invitations to join them (owners manage both, in
person: never with a key)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import hub
from api.pagination import page
from api.security import access, org_scope, principal, tx, user_scope
from api.throttle import Action, charge
from fusion.auth.models import OrgMember, Role
from fusion.orgs import invitations
from fusion.orgs import service as orgs
from fusion.orgs.models import Invitation, Org
from schemas.orgs import (
    InvitationCreateSchema,
    InvitationPageSchema,
    InvitationQuerySchema,
    InvitationSchema,
    MemberPageSchema,
    MemberQuerySchema,
    MemberSchema,
    MemberUpdateSchema,
    OrgCreateSchema,
    OrgSchema,
    OrgUpdateSchema,
)

blp = Blueprint("orgs", __name__, url_prefix="/orgs", description="Organisations and members.")


@blp.post("")
@blp.arguments(OrgCreateSchema)
@blp.response(201, OrgSchema)
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@user_scope()
def create_org(body: dict[str, Any]) -> Org:
    """Create an organisation with you as its owner (throttled per client IP and in all:
    429 with Retry-After)."""
    charge(Action.ORG_CREATE)
    org_id = uuid.uuid4()
    with hub().database.org_session(org_id) as session:
        return orgs.create_org(session, org_id=org_id, name=body["name"], owner=principal())


@blp.route("/<uuid:org_id>")
class OrgView(MethodView):
    @blp.response(200, OrgSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID) -> Org:
        """The organisation."""
        return orgs.get_org(tx(), org_id)

    @blp.arguments(OrgUpdateSchema)
    @blp.response(200, OrgSchema)
    @org_scope(Role.OWNER)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID) -> Org:
        """Rename the organisation, or require multi-factor sign-in of its owners (you must
        have it on yourself to turn that on: 409 otherwise)."""
        return orgs.update_org(
            tx(),
            access(),
            name=body.get("name"),
            require_owner_mfa=body.get("require_owner_mfa"),
        )


@blp.route("/<uuid:org_id>/members")
class Members(MethodView):
    @blp.arguments(MemberQuerySchema, location="query")
    @blp.response(200, MemberPageSchema)
    @org_scope(Role.VIEWER)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's members."""
        return page(
            tx(),
            OrgMember,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"role": query["role"]},
        )


@blp.route("/<uuid:org_id>/invitations")
class Invitations(MethodView):
    @blp.arguments(InvitationQuerySchema, location="query")
    @blp.response(200, InvitationPageSchema)
    @org_scope(Role.OWNER, people_only=True)
    def get(self, query: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
        """The organisation's invitations, answered or not (filter by status)."""
        return page(
            tx(),
            Invitation,
            limit=query["limit"],
            cursor=query["cursor"],
            filters={"status": query["status"]},
        )

    @blp.arguments(InvitationCreateSchema)
    @blp.response(201, InvitationSchema)
    @org_scope(Role.OWNER, people_only=True)
    def post(self, body: dict[str, Any], org_id: uuid.UUID) -> Invitation:
        """Invite an email to join with a role. The answer is the same whether or not the
        email has an account; whoever signs in with it sees the invitation in ``GET /me``
        and accepts or declines it there. 409 if the email already has an open one."""
        ttl = timedelta(days=hub().settings.invitation_ttl_days)
        return invitations.invite(tx(), access(), email=body["email"], role=body["role"], ttl=ttl)


@blp.route("/<uuid:org_id>/invitations/<uuid:invitation_id>")
class InvitationView(MethodView):
    @blp.response(200, InvitationSchema)
    @org_scope(Role.OWNER, people_only=True)
    def delete(self, org_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation:
        """Cancel a pending invitation (409 if it was already answered or cancelled)."""
        return invitations.cancel(tx(), access(), invitation_id)


@blp.route("/<uuid:org_id>/members/<uuid:member_id>")
class Member(MethodView):
    @blp.response(200, MemberSchema)
    @org_scope(Role.VIEWER)
    def get(self, org_id: uuid.UUID, member_id: uuid.UUID) -> OrgMember:
        """One member."""
        return orgs.get_member(tx(), member_id)

    @blp.arguments(MemberUpdateSchema)
    @blp.response(200, MemberSchema)
    @org_scope(Role.OWNER, people_only=True)
    def patch(self, body: dict[str, Any], org_id: uuid.UUID, member_id: uuid.UUID) -> OrgMember:
        """Change a member's role."""
        return orgs.change_role(tx(), access(), member_id, body["role"])

    @blp.response(204)
    @org_scope(Role.OWNER, people_only=True)
    def delete(self, org_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """Remove a member; their access ends with their next request and the API keys they
        created are revoked."""
        orgs.remove_member(tx(), access(), member_id)
