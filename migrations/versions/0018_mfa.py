"""multi-factor sign-in (TOTP factors, recovery codes, login challenges) and key rotation

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

- ``totp_factors``: one per person, the TOTP secret as a Fernet token bound to them, pending
  until ``confirmed_at``; ``last_used_step`` refuses a code's step (and earlier ones) once
  used; ``failed_attempts``/``locked_until`` stop guessing.
- ``recovery_codes``: argon2id hashes, ``used_at`` once spent.
- ``login_challenges``: what a right password gets once a factor is on (SHA-256 of the opaque
  challenge), used once, short-lived, a few wrong codes each.
  All three are global tables like ``users``: no ``org_id``, no RLS; the application role may
  read and write them.
- ``key_rotation_org_ids()``: every org's id, for ``fusion keys rotate``, which walks each
  org's encrypted rows inside that org's RLS scope. Owned by the system role (BYPASSRLS) and
  executable only by the role running this migration (the owner), never by ``fusion_app``:
  the application gains no cross-org path.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Written out as of this revision, not read from live code.
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
TABLES = ("totp_factors", "recovery_codes", "login_challenges")
ORG_IDS = "key_rotation_org_ids()"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _user_fk("totp_factors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_totp_factors")),
        sa.UniqueConstraint("user_id", name=op.f("uq_totp_factors_user_id")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("code_hash", sa.Text(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _user_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"], unique=False)
    op.create_table(
        "login_challenges",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        *_timestamps(),
        _user_fk("login_challenges"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_challenges")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_login_challenges_token_hash")),
    )
    op.create_index("ix_login_challenges_user_id", "login_challenges", ["user_id"], unique=False)
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}")
    op.execute(
        """
CREATE FUNCTION key_rotation_org_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Ids only: the rotation then reads each org's rows inside that org's own RLS scope.
    SELECT o.id FROM orgs o ORDER BY o.id
$$;
"""
    )
    op.execute(f"ALTER FUNCTION {ORG_IDS} OWNER TO {SYSTEM_ROLE}")
    op.execute(f"REVOKE ALL ON FUNCTION {ORG_IDS} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {ORG_IDS} TO CURRENT_USER")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {ORG_IDS}")
    op.drop_index("ix_login_challenges_user_id", table_name="login_challenges")
    op.drop_table("login_challenges")
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("totp_factors")
