"""api auth and access

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

The narrow cross-org reads the API needs before it knows (or to list) the caller's orgs, and
the aggregate job figures /metrics exposes. Each is a SECURITY DEFINER function owned by the
system role and callable by the application role only; none returns another org's rows in
full, only the columns its one caller needs.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "api_key_lookup(text)": """
CREATE FUNCTION api_key_lookup(p_public_id text)
RETURNS TABLE (id uuid, org_id uuid, secret_hash text, role org_role,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The one key with this public id; the caller checks the secret against the hash.
    SELECT k.id, k.org_id, k.secret_hash::text, k.role, k.expires_at, k.revoked_at,
           k.last_used_at
      FROM api_keys k WHERE k.public_id = p_public_id
$$;
""",
    "user_memberships(uuid)": """
CREATE FUNCTION user_memberships(p_user_id uuid)
RETURNS TABLE (org_id uuid, name text, slug text, role org_role, joined_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- The orgs one person belongs to (for /me), never anyone else's.
    SELECT o.id, o.name::text, o.slug::text, m.role, m.created_at
      FROM org_members m JOIN orgs o ON o.id = m.org_id
     WHERE m.user_id = p_user_id
     ORDER BY m.created_at, o.id
$$;
""",
    "metrics_job_counts()": """
CREATE FUNCTION metrics_job_counts()
RETURNS TABLE (queue text, status text, jobs bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Aggregates only: no org, no ids, no payloads.
    SELECT j.queue::text, j.status::text, count(*) FROM jobs j GROUP BY 1, 2
$$;
""",
    "metrics_job_durations(integer)": """
CREATE FUNCTION metrics_job_durations(p_window_s integer)
RETURNS TABLE (queue text, status text, finished bigint, seconds_sum double precision,
               seconds_max double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- Run time of jobs finished in the last p_window_s seconds, per queue and outcome.
    SELECT j.queue::text, j.status::text, count(*),
           coalesce(sum(extract(epoch FROM j.finished_at - j.started_at)), 0)::float8,
           coalesce(max(extract(epoch FROM j.finished_at - j.started_at)), 0)::float8
      FROM jobs j
     WHERE j.finished_at IS NOT NULL AND j.started_at IS NOT NULL
       AND j.finished_at > now() - make_interval(secs => p_window_s)
     GROUP BY 1, 2
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
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
