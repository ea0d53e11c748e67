"""People, their memberships and roles in orgs, and their credentials (API keys, refresh
tokens, TOTP second factors and their recovery codes, login challenges)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fusion.db.base import Base, FernetToken, TenantScoped, Timestamped, pg_enum


class Role(enum.StrEnum):
    OWNER = "owner"
    OPERATOR = "operator"
    VIEWER = "viewer"


class User(Timestamped, Base):
    """A person who logs in. Global (not a tenant table): one identity, many memberships."""

    __tablename__ = "users"
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(200), server_default="")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)


class OrgMember(TenantScoped, Base):
    __tablename__ = "org_members"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(pg_enum(Role, "org_role"))

    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        Index("ix_org_members_org_id_created_at", "org_id", text("created_at DESC")),
        Index("ix_org_members_user_id", "user_id"),
    )


class ApiKey(TenantScoped, Base):
    """A machine credential acting as an org member with ``role``; only a hash is stored."""

    __tablename__ = "api_keys"
    name: Mapped[str] = mapped_column(String(200))
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[Role] = mapped_column(pg_enum(Role, "org_role"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_api_keys_org_id_created_at", "org_id", text("created_at DESC")),)


class RefreshToken(Timestamped, Base):
    """One link of a rotating refresh-token family; reuse of a used link revokes the family."""

    __tablename__ = "refresh_tokens"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
    )


class TotpFactor(Timestamped, Base):
    """A person's TOTP second factor (RFC 6238). Pending until ``confirmed_at`` is set by a
    first good code; only a confirmed factor is asked for at login. Global, like users."""

    __tablename__ = "totp_factors"
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    # The base32 shared secret, encrypted and bound to the person (fusion.security.crypto).
    secret_encrypted: Mapped[bytes] = mapped_column(FernetToken)
    confirmed_at: Mapped[datetime | None]
    # The last time step a code was accepted for: that step and every earlier one are refused.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    # Wrong codes in a row (any challenge); reaching the limit locks the factor for a while.
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[datetime | None]


class RecoveryCode(Timestamped, Base):
    """A one-time code that stands in for the TOTP code (a lost phone); only an argon2id hash
    is stored, and ``used_at`` marks it spent."""

    __tablename__ = "recovery_codes"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(Text)
    used_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_recovery_codes_user_id", "user_id"),)


class LoginChallenge(Timestamped, Base):
    """A password that was right for a person with a second factor: the opaque challenge
    (stored as its SHA-256) is exchanged once, with a code, for tokens, before it expires."""

    __tablename__ = "login_challenges"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (Index("ix_login_challenges_user_id", "user_id"),)
