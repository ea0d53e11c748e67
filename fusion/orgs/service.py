"""Organisations, their members and their API keys. Owners manage all of it, in person (API
keys cannot manage members or keys: ``fusion.auth.access.PEOPLE_ONLY``); every change is
audited in the caller's transaction. Members join by invitation (``fusion.orgs.invitations``)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.audit.service import audited_delete, audited_update, record, snapshot
from fusion.auth import api_keys, mfa
from fusion.auth.access import PEOPLE_ONLY, Access, Principal
from fusion.auth.models import ApiKey, OrgMember, Role, User
from fusion.errors import Conflict, NotFound, PermissionDenied
from fusion.orgs.models import REQUIRE_OWNER_MFA, Org

ORG_FIELDS = ("name", "slug", "settings")
MEMBER_FIELDS = ("user_id", "role")
KEY_FIELDS = ("name", "public_id", "role", "expires_at", "revoked_at")


class OwnerMfaRequired(PermissionDenied):
    """This organisation requires its owners to use multi-factor sign-in: turn it on for your
    account (POST /me/mfa/totp, then /me/mfa/totp/confirm) before acting in it."""


@dataclass(frozen=True)
class KeyCreator:
    user_id: uuid.UUID
    email: str


@dataclass(frozen=True)
class KeyView:
    """An API key as an owner sees it: never its secret, always who created it."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    public_id: str
    role: Role
    created_by: KeyCreator | None
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Membership:
    org_id: uuid.UUID
    name: str
    slug: str
    role: Role
    joined_at: datetime


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "org"


def create_org(
    session: Session, *, org_id: uuid.UUID, name: str, owner: Principal, slug: str | None = None
) -> Org:
    """A new org with ``owner`` (a person) as its first owner. ``session`` must be scoped to
    ``org_id`` (RLS only lets a transaction create its own org). Raises Conflict if the slug
    is taken."""
    if owner.user_id is None:
        raise Conflict("Only a person can create an organisation.")
    slug = slug or f"{_slugify(name)}-{org_id.hex[:6]}"
    org = Org(id=org_id, name=name, slug=slug)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("This slug is taken.") from None
    member = OrgMember(org_id=org_id, user_id=owner.user_id, role=Role.OWNER)
    session.add(member)
    session.flush()
    record(
        session,
        org_id=org_id,
        actor=owner,
        action="org.create",
        resource_type="org",
        resource_id=org_id,
        after=snapshot(org, ORG_FIELDS),
    )
    return org


def get_org(session: Session, org_id: uuid.UUID) -> Org:
    org = session.get(Org, org_id)
    if org is None:
        raise NotFound("No such organisation.")
    return org


def check_owner_mfa(session: Session, access: Access) -> None:
    """The rule ``require_owner_mfa`` sets: while it is on, a person holding the owner role
    but no second factor may do nothing in the org (every endpoint under it answers 403)
    until they enrol. Other roles and API keys are unaffected. Raises OwnerMfaRequired."""
    if access.role is not Role.OWNER or access.user_id is None:
        return
    org = session.get(Org, access.org_id)
    if org is not None and org.require_owner_mfa and not mfa.has_mfa(session, access.user_id):
        raise OwnerMfaRequired()


def update_org(
    session: Session,
    access: Access,
    *,
    name: str | None,
    require_owner_mfa: bool | None = None,
) -> Org:
    """Rename the caller's org and/or set whether owners must use multi-factor sign-in
    (fields left None are unchanged). Raises Conflict when a person without a second factor
    turns the requirement on (it would lock them out at once)."""
    org = get_org(session, access.org_id)
    changes: dict[str, object] = {} if name is None else {"name": name}
    if require_owner_mfa is not None and require_owner_mfa != org.require_owner_mfa:
        if (
            require_owner_mfa
            and access.user_id is not None
            and not mfa.has_mfa(session, access.user_id)
        ):
            raise Conflict(
                "Turn on multi-factor sign-in for your own account before requiring it of owners."
            )
        changes["settings"] = {**org.settings, REQUIRE_OWNER_MFA: require_owner_mfa}
    audited_update(
        session,
        org_id=org.id,
        actor=access.principal,
        obj=org,
        changes=changes,
        action="org.update",
        resource_type="org",
        fields=ORG_FIELDS,
    )
    return org


def memberships(session: Session, user_id: uuid.UUID) -> list[Membership]:
    """Every org ``user_id`` belongs to, with their role (a narrow cross-org read)."""
    rows = session.execute(
        text("SELECT org_id, name, slug, role, joined_at FROM user_memberships(:u)"),
        {"u": user_id},
    ).mappings()
    return [
        Membership(r["org_id"], r["name"], r["slug"], Role(r["role"]), r["joined_at"]) for r in rows
    ]


def get_member(session: Session, member_id: uuid.UUID) -> OrgMember:
    member = session.get(OrgMember, member_id)
    if member is None:
        raise NotFound("No such member.")
    return member


def _other_owners(session: Session, member: OrgMember) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OrgMember)
            .where(OrgMember.role == Role.OWNER, OrgMember.id != member.id)
        )
        or 0
    )


def change_role(session: Session, access: Access, member_id: uuid.UUID, role: Role) -> OrgMember:
    """Give a member another role. Raises Conflict if it would leave the org without owners."""
    member = get_member(session, member_id)
    if member.role is Role.OWNER and role is not Role.OWNER and not _other_owners(session, member):
        raise Conflict("An organisation needs at least one owner.")
    audited_update(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=member,
        changes={"role": role},
        action="member.role",
        resource_type="org_member",
        fields=MEMBER_FIELDS,
    )
    return member


def remove_member(session: Session, access: Access, member_id: uuid.UUID) -> None:
    """Remove a member; their tokens stop reaching this org on the next request, and the API
    keys they created are revoked (each audited), so they stay dead even if the person is
    added again. Raises Conflict for the last owner."""
    member = get_member(session, member_id)
    if member.role is Role.OWNER and not _other_owners(session, member):
        raise Conflict("An organisation needs at least one owner.")
    audited_delete(
        session,
        org_id=access.org_id,
        actor=access.principal,
        obj=member,
        action="member.remove",
        resource_type="org_member",
        fields=MEMBER_FIELDS,
    )
    keys = api_keys.revoke_live(session, created_by=member.user_id)
    _record_revoked(session, access, keys, reason="its creator was removed from the organisation")


def create_api_key(
    session: Session, access: Access, *, name: str, role: Role, expires_at: datetime | None
) -> api_keys.IssuedKey:
    """A new API key for the org, acting for the caller; its plaintext is in the result and
    nowhere else. Raises PermissionDenied when the caller is an API key."""
    if access.user_id is None:
        raise PermissionDenied(PEOPLE_ONLY)
    issued = api_keys.issue(
        session,
        org_id=access.org_id,
        name=name,
        role=role,
        created_by=access.user_id,
        expires_at=expires_at,
    )
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="api_key.create",
        resource_type="api_key",
        resource_id=issued.key.id,
        after=snapshot(issued.key, KEY_FIELDS),
    )
    return issued


def revoke_api_key(session: Session, access: Access, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key of the org (idempotent); raises NotFound for another org's or unknown id."""
    key = api_keys.revoke(session, key_id)
    _record_revoked(session, access, [key])
    return key


def revoke_all_api_keys(session: Session, access: Access) -> list[ApiKey]:
    """Revoke every live key of the org at once (a leak, a departure): each revocation is
    audited, and one ``api_key.revoke_all`` entry names who did it and which keys went (even
    when there were none). Returns the keys revoked."""
    keys = api_keys.revoke_live(session)
    _record_revoked(session, access, keys, reason="all keys of the organisation were revoked")
    record(
        session,
        org_id=access.org_id,
        actor=access.principal,
        action="api_key.revoke_all",
        resource_type="org",
        resource_id=access.org_id,
        after={"revoked": [str(key.id) for key in keys]},
    )
    return keys


def _record_revoked(
    session: Session, access: Access, keys: list[ApiKey], *, reason: str | None = None
) -> None:
    """One ``api_key.revoke`` audit entry per key, with the reason when it was not the key's
    own revocation."""
    for key in keys:
        record(
            session,
            org_id=access.org_id,
            actor=access.principal,
            action="api_key.revoke",
            resource_type="api_key",
            resource_id=key.id,
            after={**snapshot(key, KEY_FIELDS), **({"reason": reason} if reason else {})},
        )


def describe_keys(session: Session, keys: list[ApiKey]) -> list[KeyView]:
    """``keys`` as owners see them, each with its creator's user id and email (None when the
    creator's account is gone)."""
    creator_ids = {key.created_by for key in keys if key.created_by is not None}
    emails = dict(
        session.execute(select(User.id, User.email).where(User.id.in_(creator_ids))).all()
        if creator_ids
        else []
    )
    return [
        KeyView(
            id=key.id,
            org_id=key.org_id,
            name=key.name,
            public_id=key.public_id,
            role=key.role,
            created_by=(
                KeyCreator(key.created_by, emails[key.created_by])
                if key.created_by in emails
                else None
            ),
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            created_at=key.created_at,
            updated_at=key.updated_at,
        )
        for key in keys
    ]


def get_api_key(session: Session, key_id: uuid.UUID) -> KeyView:
    """One key of the org, described; raises NotFound for another org's or an unknown id."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("No such API key.")
    return describe_keys(session, [key])[0]
