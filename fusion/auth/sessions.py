"""People's logins: sign-up, login (with a second factor once enrolled), rotating refresh
tokens with reuse detection, logout, password change.

A login session is a refresh-token family. Each refresh uses up the presented token and issues
the next one of the same family; presenting a used token again means it was stolen (or
replayed), so the whole family is revoked, and with it every access token naming it as ``sid``.
A family lives at most ``session_max_age_days`` from its login, however often it is refreshed:
a stolen refresh token kept fresh by a thief stops working then too.
Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, bindparam, column, func, select, update
from sqlalchemy.orm import Session

from fusion.auth import mfa
from fusion.auth.errors import AuthenticationFailed
from fusion.auth.models import OrgMember, RefreshToken, Role, User
from fusion.auth.passwords import hash_password, password_problems, verify_password
from fusion.auth.secrets import digest, new_opaque_token
from fusion.auth.tokens import AccessClaims, issue_access_token
from fusion.config import Settings
from fusion.db.prepared import Prepared, prepare
from fusion.errors import Conflict, ValidationFailed


@dataclass(frozen=True)
class TokenPair:
    user_id: uuid.UUID
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(session: Session, *, email: str, password: str, display_name: str = "") -> User:
    """A new active user. Raises ValidationFailed for a weak password and Conflict if the
    email (case-insensitive) is taken."""
    problems = password_problems(password)
    if problems:
        raise ValidationFailed(fields={"password": problems})
    email = normalise_email(email)
    taken = session.scalar(select(User.id).where(func.lower(User.email) == email))
    if taken is not None:
        raise Conflict("An account with this email already exists.")
    user = User(email=email, password_hash=hash_password(password), display_name=display_name)
    session.add(user)
    session.flush()
    return user


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def _start_family(session: Session, settings: Settings, user_id: uuid.UUID) -> TokenPair:
    return _issue(
        session, settings, user_id=user_id, family_id=uuid.uuid4(), started_at=datetime.now(UTC)
    )


def _family_started_at(session: Session, family_id: uuid.UUID) -> datetime | None:
    """When the login session began: its first refresh token's creation."""
    return session.scalar(
        select(func.min(RefreshToken.created_at)).where(RefreshToken.family_id == family_id)
    )


def _issue(
    session: Session,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    started_at: datetime,
) -> TokenPair:
    refresh = new_opaque_token()
    refresh_expires = min(
        datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_s),
        started_at + timedelta(days=settings.session_max_age_days),
    )
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=digest(refresh),
            expires_at=refresh_expires,
        )
    )
    session.flush()
    access, access_expires = issue_access_token(
        settings.jwt_secret,
        user_id=user_id,
        session_id=family_id,
        ttl_s=settings.access_token_ttl_s,
    )
    return TokenPair(user_id, access, access_expires, refresh, refresh_expires)


def login(
    session: Session, settings: Settings, *, email: str, password: str
) -> TokenPair | mfa.MfaChallenge:
    """A new login session for the user with ``email`` and ``password``, or, once they have a
    second factor, only a challenge to redeem with a code (:func:`login_second_factor`); the
    caller must commit the challenge. Raises AuthenticationFailed (the same for an unknown
    email, a wrong password or an inactive account, and taking the same time)."""
    user = find_user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise AuthenticationFailed("login refused")
    if mfa.has_mfa(session, user.id):
        return mfa.issue_challenge(session, user.id)
    return _start_family(session, settings, user.id)


def login_second_factor(
    session: Session,
    settings: Settings,
    *,
    challenge: str,
    code: str | None = None,
    recovery_code: str | None = None,
) -> TokenPair | None:
    """A new login session for the person ``challenge`` was issued to, given a good TOTP
    ``code`` or an unused ``recovery_code``; None if refused (see
    :func:`fusion.auth.mfa.redeem_challenge`: the refusal's count must be committed)."""
    user_id = mfa.redeem_challenge(
        session, settings, challenge=challenge, code=code, recovery_code=recovery_code
    )
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    return _start_family(session, settings, user.id)


def start_session(session: Session, settings: Settings, user: User) -> TokenPair:
    """A new login session for a user just created (sign-up)."""
    return _start_family(session, settings, user.id)


def rotate(session: Session, settings: Settings, refresh_token: str) -> TokenPair | None:
    """Use up ``refresh_token`` and return the next pair of its family, or None if refused:
    unknown, expired, revoked, already used, or of a family older than
    ``session_max_age_days``. A reused token revokes its whole family
    (that change must be committed by the caller even though the answer is a refusal),
    except within ``refresh_reuse_grace_s`` of its first use: two tabs refreshing at once, or
    a client retrying after a lost answer, each get a pair of the same family."""
    row = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == digest(refresh_token))
        .with_for_update()
    )
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.used_at is not None and now - row.used_at > timedelta(
        seconds=settings.refresh_reuse_grace_s
    ):
        revoke_family(session, row.family_id)
        return None
    if _family_revoked(session, row.family_id):
        return None
    started_at = _family_started_at(session, row.family_id) or row.created_at
    if now - started_at >= timedelta(days=settings.session_max_age_days):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.used_at = row.used_at or now
    return _issue(
        session, settings, user_id=row.user_id, family_id=row.family_id, started_at=started_at
    )


def revoke_family(session: Session, family_id: uuid.UUID) -> None:
    """Revoke every refresh token of the login session ``family_id`` (idempotent)."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def logout(session: Session, claims: AccessClaims) -> None:
    """End the login session the access token belongs to: its refresh tokens and every access
    token naming it stop working."""
    revoke_family(session, claims.session_id)


def change_password(
    session: Session,
    settings: Settings,
    claims: AccessClaims,
    *,
    current_password: str,
    new_password: str,
) -> TokenPair:
    """Give the caller a new password and end every login session of theirs (each device's
    refresh and access tokens stop working); returns the pair of a fresh session for the
    caller. Raises AuthenticationFailed when the caller's session is no longer valid, and
    ValidationFailed naming ``current_password`` when it does not match, or ``new_password``
    when it is weak or the same as the current one."""
    user = active_user(session, claims)
    if not verify_password(user.password_hash, current_password):
        raise ValidationFailed(fields={"current_password": ["Does not match."]})
    if new_password == current_password:
        raise ValidationFailed(fields={"new_password": ["Must differ from the current password."]})
    set_password(session, user, new_password)
    return _start_family(session, settings, user.id)


def set_password(session: Session, user: User, new_password: str) -> None:
    """Give ``user`` a new password and end every login session of theirs (an operator's
    reset from the shell, or :func:`change_password`). Raises ValidationFailed naming
    ``new_password`` when it is weak."""
    problems = password_problems(new_password)
    if problems:
        raise ValidationFailed(fields={"new_password": problems})
    user.password_hash = hash_password(new_password)
    end_all_sessions(session, user.id)


def end_all_sessions(session: Session, user_id: uuid.UUID) -> None:
    """Revoke every login session of ``user_id`` (their refresh and access tokens stop
    working). Idempotent."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def _family_revoked(session: Session, family_id: uuid.UUID) -> bool:
    return (
        session.scalar(
            select(RefreshToken.id)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None))
            .limit(1)
        )
        is not None
    )


def active_user(session: Session, claims: AccessClaims) -> User:
    """The user an access token names, if their account is active and the login session is not
    revoked. Raises AuthenticationFailed otherwise. One query (every authenticated request
    makes it): the user and whether their login session has a revoked token."""
    user, _ = _active(session, _ACTIVE_USER, claims, {})
    return user


def active_member(
    session: Session, claims: AccessClaims, org_id: uuid.UUID
) -> tuple[User, Role | None]:
    """:func:`active_user`, with the user's role in ``org_id`` (None: not a member) read in
    the same query; ``session`` must be scoped to ``org_id`` (row-level security)."""
    return _active(session, _ACTIVE_MEMBER, claims, {"org_id": org_id})


def _active(
    session: Session, query: Prepared, claims: AccessClaims, params: dict[str, Any]
) -> tuple[User, Role | None]:
    found = session.execute(
        query.on(session), {"user_id": claims.user_id, "session_id": claims.session_id, **params}
    ).first()
    if found is None or not found[0].is_active:
        raise AuthenticationFailed("user unknown or inactive")
    if found[1]:
        raise AuthenticationFailed("login session revoked")
    user: User = found[0]
    return user, found[2] if len(found) > 2 else None


_REVOKED = (
    select(RefreshToken.id)
    .where(RefreshToken.family_id == bindparam("session_id"), RefreshToken.revoked_at.is_not(None))
    .exists()
    .label("revoked")
)
_ROLE = (
    select(OrgMember.role)
    .where(OrgMember.org_id == bindparam("org_id"), OrgMember.user_id == User.id)
    .scalar_subquery()
    .label("role")
)
# Every authenticated request makes one of these: prepared once per connection, read back by
# column name into the user and the answers beside it.
_ACTIVE_USER = prepare(
    select(User, _REVOKED).where(User.id == bindparam("user_id")),
    User,
    column("revoked", Boolean),
)
_ACTIVE_MEMBER = prepare(
    select(User, _REVOKED, _ROLE).where(User.id == bindparam("user_id")),
    User,
    column("revoked", Boolean),
    column("role", OrgMember.role.type),
)
