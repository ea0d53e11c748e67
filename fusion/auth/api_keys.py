"""Org API keys for machine clients: ``fsh_<public_id>_<secret>``, shown once, stored hashed.

The public id finds the row (through the narrow ``api_key_lookup`` database function, since the
org is not known before the key is read); only the SHA-256 of the secret is stored and it is
compared in constant time.

A key acts for the person who created it and never above them: with the lower of its own role
and its creator's current role in the key's org. It dies with its creator's membership (or
account): a key whose creator is no longer an active member of its org is refused exactly
like an unknown key. Removing a member also revokes their keys, so they stay dead if the
person is added again (``fusion.orgs.service.remove_member``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from fusion.auth.access import RANK
from fusion.auth.errors import AuthenticationFailed
from fusion.auth.models import ApiKey, Role
from fusion.auth.secrets import digest, new_opaque_token, same_digest
from fusion.errors import NotFound

PREFIX = "fsh_"
# Touching last_used_at on every call would turn each read into a write; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class KeyIdentity:
    """A valid key: its org, the person it acts for, and the role it acts with now."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    role: Role
    created_by: uuid.UUID


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str  # shown to the client once, never stored


def issue(
    session: Session,
    *,
    org_id: uuid.UUID,
    name: str,
    role: Role,
    created_by: uuid.UUID | None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """A new key for ``org_id`` acting with ``role``; the plaintext exists only in the result."""
    public_id = secrets.token_hex(8)
    secret = new_opaque_token()
    key = ApiKey(
        org_id=org_id,
        name=name,
        public_id=public_id,
        secret_hash=digest(secret),
        role=role,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return IssuedKey(key=key, plaintext=f"{PREFIX}{public_id}_{secret}")


def parse(presented: str) -> tuple[str, str] | None:
    """(public_id, secret) of a well-formed key, else None."""
    if not presented.startswith(PREFIX):
        return None
    public_id, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or not public_id or not secret or len(public_id) > 32:
        return None
    return public_id, secret


def authenticate(session: Session, presented: str) -> KeyIdentity:
    """The org, creator and effective role of a valid key: the lower of the key's role and its
    creator's current role in the key's org. Raises AuthenticationFailed (all alike) for a
    malformed, unknown, wrong, revoked or expired key, and for one whose creator is no longer
    a member of its org or whose account is gone or disabled."""
    parsed = parse(presented)
    if parsed is None:
        raise AuthenticationFailed("malformed api key")
    public_id, secret = parsed
    row = (
        session.execute(
            text(
                "SELECT id, org_id, secret_hash, role, expires_at, revoked_at, last_used_at, "
                "created_by, creator_role, creator_active FROM api_key_lookup(:public_id)"
            ),
            {"public_id": public_id},
        )
        .mappings()
        .first()
    )
    expected = row["secret_hash"] if row else digest("absent-" + public_id)
    matches = same_digest(secret, expected)  # compared even when absent: same cost either way
    now = datetime.now(UTC)
    if row is None or not matches:
        raise AuthenticationFailed("unknown api key")
    if row["revoked_at"] is not None or (row["expires_at"] and row["expires_at"] <= now):
        raise AuthenticationFailed("api key revoked or expired")
    if row["created_by"] is None or row["creator_role"] is None or not row["creator_active"]:
        raise AuthenticationFailed("api key's creator is no longer an active member")
    role = min(Role(row["role"]), Role(row["creator_role"]), key=RANK.__getitem__)
    return KeyIdentity(
        key_id=row["id"], org_id=row["org_id"], role=role, created_by=row["created_by"]
    )


def touch(session: Session, key_id: uuid.UUID) -> None:
    """Record that the key was used (at most once per LAST_USED_RESOLUTION)."""
    cutoff = datetime.now(UTC) - LAST_USED_RESOLUTION
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < cutoff))
        .values(last_used_at=datetime.now(UTC))
    )


def revoke_live(session: Session, *, created_by: uuid.UUID | None = None) -> list[ApiKey]:
    """Revoke every key of the session's org not yet revoked (only those ``created_by`` one
    person, when given), oldest first; returns the keys this call revoked."""
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None)).with_for_update()
    if created_by is not None:
        query = query.where(ApiKey.created_by == created_by)
    keys = list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.id)))
    now = datetime.now(UTC)
    for key in keys:
        key.revoked_at = now
    session.flush()
    return keys


def revoke(session: Session, key_id: uuid.UUID) -> ApiKey:
    """Revoke the key ``key_id`` of the session's org (idempotent). Raises NotFound if there is
    no such key in this org."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()
    return key
