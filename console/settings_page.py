"""Settings: the org's name, its members and their roles, invitations, and API keys (a new
key is shown once, on the answer to the form that made it, and kept nowhere else)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import flash, render_template
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.context import hub
from console import forms
from console.scope import access, back, bp, can, page, tx
from fusion.auth.models import ApiKey, OrgMember, Role, User
from fusion.orgs import invitations
from fusion.orgs import service as orgs
from fusion.orgs.models import Invitation, InvitationStatus


def _render(**extra: Any) -> str:
    members = (
        tx()
        .execute(
            select(OrgMember, User.email)
            .join(User, User.id == OrgMember.user_id)
            .order_by(OrgMember.created_at)
        )
        .all()
    )
    owner = can(Role.OWNER)
    pending = (
        list(tx().scalars(select(Invitation).where(Invitation.status == InvitationStatus.PENDING)))
        if owner
        else []
    )
    keys = (
        orgs.describe_keys(
            tx(), list(tx().scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))
        )
        if owner
        else []
    )
    return render_template(
        "console/settings.html",
        org=orgs.get_org(tx(), access().org_id),
        members=members,
        invitations=pending,
        keys=keys,
        roles=list(Role),
        **extra,
    )


@bp.get("/orgs/<uuid:org_id>/settings")
@page(Role.VIEWER)
def settings_page(org_id: uuid.UUID) -> str:
    return _render()


@bp.post("/orgs/<uuid:org_id>/settings/name")
@page(Role.OWNER)
def rename_org(org_id: uuid.UUID) -> Response:
    orgs.update_org(tx(), access(), name=forms.text("name", required=True))
    flash("Organisation renamed.", "ok")
    return back("console.settings_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/members/<uuid:member_id>/role")
@page(Role.OWNER)
def change_role(org_id: uuid.UUID, member_id: uuid.UUID) -> Response:
    role = forms.choice("role", Role, source="form")
    if role is None:
        forms.text("role", required=True)
    orgs.change_role(tx(), access(), member_id, role)  # type: ignore[arg-type]
    flash("Role changed.", "ok")
    return back("console.settings_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/members/<uuid:member_id>/remove")
@page(Role.OWNER)
def remove_member(org_id: uuid.UUID, member_id: uuid.UUID) -> Response:
    orgs.remove_member(tx(), access(), member_id)
    flash("Member removed; their sessions in this org end at their next request.", "ok")
    return back("console.settings_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/invitations")
@page(Role.OWNER)
def invite(org_id: uuid.UUID) -> Response:
    role = forms.choice("role", Role, source="form") or Role.VIEWER
    ttl = timedelta(days=hub().settings.invitation_ttl_days)
    invitations.invite(tx(), access(), email=forms.text("email", required=True), role=role, ttl=ttl)
    flash("Invitation sent: it shows when that person signs in.", "ok")
    return back("console.settings_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/invitations/<uuid:invitation_id>/cancel")
@page(Role.OWNER)
def cancel_invitation(org_id: uuid.UUID, invitation_id: uuid.UUID) -> Response:
    invitations.cancel(tx(), access(), invitation_id)
    flash("Invitation cancelled.", "ok")
    return back("console.settings_page", org_id=org_id)


@bp.post("/orgs/<uuid:org_id>/api-keys")
@page(Role.OWNER)
def create_key(org_id: uuid.UUID) -> str:
    """Answered with the page itself (no redirect): the key is shown in this answer only."""
    role = forms.choice("role", Role, source="form") or Role.VIEWER
    issued = orgs.create_api_key(
        tx(), access(), name=forms.text("name", required=True), role=role, expires_at=None
    )
    return _render(new_key=issued.plaintext, new_key_name=issued.key.name)


@bp.post("/orgs/<uuid:org_id>/api-keys/<uuid:key_id>/revoke")
@page(Role.OWNER)
def revoke_key(org_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    orgs.revoke_api_key(tx(), access(), key_id)
    flash("Key revoked.", "ok")
    return back("console.settings_page", org_id=org_id)
