"""Adding members by invitation: an owner invites an email with a role; whoever signs in with
that email sees the invitation and accepts (becoming a member) or declines.

Inviting never looks the email up, so the owner's answer is the same whether or not the email
has an account (looking it up made every owner an oracle of which emails are registered).
The owner learns only what the invitee chooses to tell: an answer. Every change is audited
in the inviting org's chain, in the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.audit.service import audited_create, audited_update, record, snapshot
from fusion.auth.access import Access, Principal
from fusion.auth.models import OrgMember, Role, User
from fusion.errors import Conflict, NotFound
from fusion.orgs.models import Invitation, InvitationStatus

INVITATION_FIELDS = ("email", "role", "status", "expires_at", "answered_by", "answered_at")
MEMBER_FIELDS = ("user_id", "role")
ANSWER_ACTIONS = {
    InvitationStatus.ACCEPTED: "invitation.accept",
    InvitationStatus.DECLINED: "invitation.decline",
    InvitationStatus.CANCELLED: "invitation.cancel",
}


@dataclass(frozen=True)
class OpenInvitation:
    """An invitation as its invitee sees it (``GET /me``)."""

    id: uuid.UUID
    org_id: uuid.UUID
    org_name: str
    role: Role
    invited_at: datetime
    expires_at: datetime


def _normalise(email: str) -> str:
    return email.strip().lower()


def invite(
    session: Session, access: Access, *, email: str, role: Role, ttl: timedelta
) -> Invitation:
    """A pending invitation of ``email`` to the caller's org as ``role``, open for ``ttl``.

    Does not look at accounts at all. Raises Conflict if the org already has an open
    invitation for this email (a lapsed one is cancelled and replaced)."""
    email = _normalise(email)
    now = datetime.now(UTC)
    previous = session.scalar(
        select(Invitation)
        .where(
            Invitation.status == InvitationStatus.PENDING,
            func.lower(Invitation.email) == email,
        )
        .with_for_update()
    )
    if previous is not None:
        if previous.is_open(now):
            raise Conflict("This email already has an open invitation to this organisation.")
        _answer(session, access.principal, previous, InvitationStatus.CANCELLED, None, now)
    invitation = Invitation(
        org_id=access.org_id,
        email=email,
        role=role,
        invited_by=access.user_id,
        expires_at=now + ttl,
    )
    session.add(invitation)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent invite of the same email won
        raise Conflict("This email already has an open invitation to this organisation.") from None
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="invitation.create",
        resource_type="org_invitation",
        resource_id=invitation.id,
        after=snapshot(invitation, INVITATION_FIELDS),
    )
    return invitation


def cancel(session: Session, access: Access, invitation_id: uuid.UUID) -> Invitation:
    """Withdraw a pending invitation of the caller's org. Raises NotFound for an unknown (or
    another org's) id and Conflict if it was already answered or cancelled."""
    invitation = session.get(Invitation, invitation_id, with_for_update=True)
    if invitation is None:
        raise NotFound("No such invitation.")
    if invitation.status is not InvitationStatus.PENDING:
        raise Conflict(f"This invitation is already {invitation.status.value}.")
    _answer(session, access.principal, invitation, InvitationStatus.CANCELLED, None)
    return invitation


def open_invitations(session: Session, user_id: uuid.UUID) -> list[OpenInvitation]:
    """The open invitations addressed to the email of ``user_id``'s account, in every org
    (a narrow cross-org read), oldest first."""
    rows = session.execute(
        text("SELECT id, org_id, org_name, role, invited_at, expires_at FROM user_invitations(:u)"),
        {"u": user_id},
    ).mappings()
    return [
        OpenInvitation(
            r["id"], r["org_id"], r["org_name"], Role(r["role"]), r["invited_at"], r["expires_at"]
        )
        for r in rows
    ]


def invitation_org(session: Session, user_id: uuid.UUID, invitation_id: uuid.UUID) -> uuid.UUID:
    """The org of invitation ``invitation_id`` if it is addressed to ``user_id``'s email (the
    org whose transaction :func:`accept` and :func:`decline` then run in). Raises NotFound
    otherwise, the same for an unknown id and someone else's invitation."""
    org_id = session.scalar(
        text("SELECT invitation_org(:i, :u)"), {"i": invitation_id, "u": user_id}
    )
    if org_id is None:
        raise NotFound("No such invitation.")
    return uuid.UUID(str(org_id))


def accept(session: Session, invitee: Principal, invitation_id: uuid.UUID) -> OrgMember:
    """Make the invitee a member with the invitation's role. ``session`` must be scoped to
    the invitation's org (:func:`invitation_org`). Raises NotFound unless the invitation is
    addressed to the invitee's email, and Conflict if it is no longer open or the invitee is
    already a member (the invitation then stays as it was)."""
    invitation, user = _addressed_to(session, invitee, invitation_id)
    existing = session.scalar(
        select(OrgMember.id).where(
            OrgMember.org_id == invitation.org_id, OrgMember.user_id == user.id
        )
    )
    if existing is not None:
        raise Conflict("You are already a member of this organisation.")
    member = OrgMember(org_id=invitation.org_id, user_id=user.id, role=invitation.role)
    audited_create(
        session,
        org_id=invitation.org_id,
        actor=invitee,
        obj=member,
        action="member.add",
        resource_type="org_member",
        fields=MEMBER_FIELDS,
    )
    _answer(session, invitee, invitation, InvitationStatus.ACCEPTED, user.id)
    return member


def decline(session: Session, invitee: Principal, invitation_id: uuid.UUID) -> Invitation:
    """Turn the invitation down. ``session`` must be scoped to the invitation's org. Raises
    NotFound unless it is addressed to the invitee's email, Conflict if no longer open."""
    invitation, user = _addressed_to(session, invitee, invitation_id)
    _answer(session, invitee, invitation, InvitationStatus.DECLINED, user.id)
    return invitation


def _addressed_to(
    session: Session, invitee: Principal, invitation_id: uuid.UUID
) -> tuple[Invitation, User]:
    invitation = session.get(Invitation, invitation_id, with_for_update=True)
    user = session.get(User, invitee.user_id) if invitee.user_id else None
    if invitation is None or user is None or _normalise(user.email) != invitation.email:
        raise NotFound("No such invitation.")
    if not invitation.is_open(datetime.now(UTC)):
        raise Conflict("This invitation is no longer open.")
    return invitation, user


def _answer(
    session: Session,
    actor: Principal,
    invitation: Invitation,
    status: InvitationStatus,
    answered_by: uuid.UUID | None,
    now: datetime | None = None,
) -> None:
    audited_update(
        session,
        org_id=invitation.org_id,
        actor=actor,
        obj=invitation,
        changes={
            "status": status,
            "answered_by": answered_by,
            "answered_at": now or datetime.now(UTC),
        },
        action=ANSWER_ACTIONS[status],
        resource_type="org_invitation",
        fields=INVITATION_FIELDS,
    )
