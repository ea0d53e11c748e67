"""webhooks: routing an incoming delivery to its store's org

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

A webhook arrives with no credentials but the store id in its URL, and the receiver must find
the store's org before it can open that org's session (RLS hides every store from a session
without one). ``webhook_route(store_id)`` is the one narrow cross-org read this needs: the
store's org and platform, nothing else (no secret, no name), owned by the system role and
callable by the application role only. An unknown store returns no row.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "webhook_route(uuid)": """
CREATE FUNCTION webhook_route(p_store_id uuid)
RETURNS TABLE (org_id uuid, platform text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.org_id, s.platform::text FROM stores s WHERE s.id = p_store_id;
$$;
""",
}


def system_function_owner(signature: str) -> list[str]:
    """``signature`` becomes a narrow system path: owned by the BYPASSRLS system role,
    callable by the application role and nobody else (as of this revision: written out here,
    not imported from live code)."""
    return [
        f"ALTER FUNCTION {signature} OWNER TO fusion_system",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO fusion_app",
    ]


def upgrade() -> None:
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        for statement in system_function_owner(signature):
            op.execute(statement)


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
