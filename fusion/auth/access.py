"""Who the caller is (a principal) and whether their role in an org allows an action.

Roles are never trusted from a token: a person's membership is read inside the org's own
transaction on every request, so removing a member or changing their role applies at once.
An API key acts for the person who created it, never above them: with the lower of its own
role and its creator's current one (``fusion.auth.api_keys.authenticate``).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fusion.auth.models import OrgMember, Role
from fusion.errors import NotFound, PermissionDenied

RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.OWNER: 3}
PEOPLE_ONLY = (
    "API keys cannot manage members or API keys: an owner must do this signed in as themselves."
)


class ActorType(enum.StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person, or an API key bound to one org and acting for the
    person who created it (``key_creator_id``) with at most their role (``key_role``)."""

    actor_type: ActorType
    actor_id: uuid.UUID
    key_org_id: uuid.UUID | None = None
    key_role: Role | None = None
    key_creator_id: uuid.UUID | None = None

    @property
    def user_id(self) -> uuid.UUID | None:
        """The person calling in person (None for an API key)."""
        return self.actor_id if self.actor_type is ActorType.USER else None

    @property
    def is_key(self) -> bool:
        return self.actor_type is ActorType.API_KEY

    @property
    def person_id(self) -> uuid.UUID | None:
        """The person behind the call: the caller, or the creator of the key calling."""
        return self.key_creator_id if self.is_key else self.user_id


@dataclass(frozen=True)
class Access:
    """A principal's standing in one org, established for the current transaction."""

    principal: Principal
    org_id: uuid.UUID
    role: Role

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id

    def require(self, minimum: Role) -> None:
        """Raises PermissionDenied when this role is below ``minimum``: a service's own check,
        so a caller (the API, the console) that only hides an action cannot slip past it."""
        if RANK[self.role] < RANK[minimum]:
            raise PermissionDenied(f"This action needs the {minimum.value} role or higher.")


def role_in_org(session: Session, principal: Principal, org_id: uuid.UUID) -> Role | None:
    """The principal's role in ``org_id`` (None if not a member). ``session`` must be scoped to
    ``org_id``: RLS makes other orgs' memberships invisible anyway."""
    if principal.actor_type is ActorType.API_KEY:
        return principal.key_role if principal.key_org_id == org_id else None
    return session.scalar(_ROLE, {"org_id": org_id, "user_id": principal.actor_id})


_ROLE = select(OrgMember.role).where(
    OrgMember.org_id == bindparam("org_id"), OrgMember.user_id == bindparam("user_id")
)


def authorize(
    session: Session,
    principal: Principal,
    org_id: uuid.UUID,
    minimum: Role,
    *,
    people_only: bool = False,
) -> Access:
    """The principal's access to ``org_id`` if their role is at least ``minimum`` (and, for
    ``people_only`` actions such as managing members and keys, if they are a person).

    Raises NotFound when they are not a member (the same answer as for an org that does not
    exist, so org ids cannot be probed) and PermissionDenied when the role is too low or an
    API key attempts a people-only action.
    """
    role = role_in_org(session, principal, org_id)
    return grant(principal, org_id, role, minimum, people_only=people_only)


def grant(
    principal: Principal,
    org_id: uuid.UUID,
    role: Role | None,
    minimum: Role,
    *,
    people_only: bool = False,
) -> Access:
    """:func:`authorize` given the principal's ``role`` in ``org_id`` as just read in the
    org's transaction (None: not a member), for a caller that read it with something else."""
    if role is None:
        raise NotFound("No such organisation.")
    if RANK[role] < RANK[minimum]:
        raise PermissionDenied(f"This action needs the {minimum.value} role or higher.")
    if people_only and principal.is_key:
        # A leaked key must not be able to make itself permanent: no new keys, no new members.
        raise PermissionDenied(PEOPLE_ONLY)
    return Access(principal=principal, org_id=org_id, role=role)
