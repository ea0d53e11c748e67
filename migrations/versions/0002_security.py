"""Roles, row-level security, the job SQL functions and the append-only audit chain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

- ``fusion_app``: LOGIN, neither owner nor superuser nor BYPASSRLS; every process connects
  as it. Statement and idle-in-transaction timeouts are set on it for this database.
- ``fusion_system``: NOLOGIN, BYPASSRLS; owns the few SECURITY DEFINER functions that are the
  narrow cross-org path (claiming jobs, and what later revisions add). Nobody can log in as it.
- RLS is ENABLEd and FORCEd on ``orgs`` and every table with ``org_id``.
- ``audit_logs`` refuses UPDATE, DELETE and TRUNCATE and chains each org's entries by SHA-256.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from fusion.db.migrate import APP_PASSWORD_PLACEHOLDER

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Everything below is written out as of this revision, not read from live code: a revision
# must mean the same thing whatever the models and helpers later become.
APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"
GLOBAL_TABLES = ("users", "refresh_tokens", "plugins", "plugin_contracts")
# The tables with an org_id column that 0001 created (tests/db/test_isolation.py checks that
# every tenant table of the head schema has the policy).
TENANT_TABLES = (
    "api_keys",
    "approval_policies",
    "approvals",
    "audit_logs",
    "job_logs",
    "jobs",
    "listings",
    "order_lines",
    "orders",
    "org_members",
    "plugin_instances",
    "product_variants",
    "products",
    "stores",
    "webhooks",
)
CLAIM_SIGNATURE = "claim_next_job(text, text[], integer)"

ENQUEUE_JOB = """
CREATE FUNCTION enqueue_job(
    p_org_id uuid, p_job_type text, p_queue text, p_payload jsonb DEFAULT '{}'::jsonb,
    p_store_id uuid DEFAULT NULL, p_priority integer DEFAULT 0,
    p_scheduled_at timestamptz DEFAULT now(), p_max_attempts integer DEFAULT 5,
    p_idempotency_key text DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql SECURITY INVOKER AS $$
-- Runs under the caller's RLS: a job can only be enqueued for the transaction's own org.
-- The same idempotency key (per org) returns the first job and inserts nothing.
DECLARE v_id uuid;
BEGIN
    INSERT INTO jobs (id, org_id, store_id, job_type, queue, payload, priority, scheduled_at,
                      max_attempts, idempotency_key)
    VALUES (gen_random_uuid(), p_org_id, p_store_id, p_job_type, p_queue, p_payload,
            p_priority, p_scheduled_at, p_max_attempts, p_idempotency_key)
    ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM jobs
         WHERE org_id = p_org_id AND idempotency_key = p_idempotency_key;
        RETURN v_id;
    END IF;
    INSERT INTO job_logs (id, org_id, job_id, level, message)
    VALUES (gen_random_uuid(), p_org_id, v_id, 'info', 'enqueued ' || p_job_type);
    RETURN v_id;
END $$;
"""

CLAIM_NEXT_JOB = """
CREATE FUNCTION claim_next_job(
    p_worker_id text, p_queues text[] DEFAULT NULL, p_lease_seconds integer DEFAULT 30
) RETURNS SETOF jobs LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- Hands the most urgent due pending job to exactly one caller (FOR UPDATE SKIP LOCKED).
BEGIN
    RETURN QUERY
    WITH next AS (
        SELECT id FROM jobs
         WHERE status = 'pending' AND scheduled_at <= now()
           AND (p_queues IS NULL OR queue = ANY (p_queues))
         ORDER BY priority DESC, scheduled_at
         LIMIT 1
         FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs j
       SET status = 'claimed', locked_by = p_worker_id, claimed_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_seconds),
           attempts = j.attempts + 1, updated_at = now()
      FROM next
     WHERE j.id = next.id
    RETURNING j.*;
END $$;
"""

AUDIT_HASH = """
CREATE FUNCTION audit_entry_hash(
    p_prev text, p_org uuid, p_seq bigint, p_actor_type text, p_actor_id uuid, p_action text,
    p_resource_type text, p_resource_id uuid, p_before jsonb, p_after jsonb, p_at timestamptz
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|',
        p_prev, p_org::text, p_seq::text, p_actor_type, coalesce(p_actor_id::text, ''),
        p_action, p_resource_type, coalesce(p_resource_id::text, ''),
        coalesce(p_before::text, 'null'), coalesce(p_after::text, 'null'),
        to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 'UTF8')), 'hex')
$$;
"""

AUDIT_CHAIN = """
CREATE FUNCTION audit_logs_chain() RETURNS trigger LANGUAGE plpgsql AS $$
-- Serialise writers per org, then link the new entry to the org's last one.
DECLARE v_last record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || NEW.org_id::text, 0));
    SELECT seq, entry_hash INTO v_last FROM audit_logs
     WHERE org_id = NEW.org_id ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(v_last.seq, 0) + 1;
    NEW.prev_hash := coalesce(v_last.entry_hash, '');
    NEW.created_at := clock_timestamp();
    NEW.updated_at := NEW.created_at;
    NEW.entry_hash := audit_entry_hash(NEW.prev_hash, NEW.org_id, NEW.seq, NEW.actor_type,
        NEW.actor_id, NEW.action, NEW.resource_type, NEW.resource_id, NEW.before, NEW.after,
        NEW.created_at);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_logs_chain BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_chain();

CREATE FUNCTION audit_logs_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_refuse();

CREATE FUNCTION audit_verify(p_org uuid) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
-- The seq of the first entry of p_org whose links do not hold, or NULL if the chain is intact.
DECLARE r record; v_prev text := ''; v_seq bigint := 0;
BEGIN
    FOR r IN SELECT * FROM audit_logs WHERE org_id = p_org ORDER BY seq LOOP
        v_seq := v_seq + 1;
        IF r.seq <> v_seq OR r.prev_hash <> v_prev OR r.entry_hash <> audit_entry_hash(
            r.prev_hash, r.org_id, r.seq, r.actor_type, r.actor_id, r.action, r.resource_type,
            r.resource_id, r.before, r.after, r.created_at) THEN
            RETURN r.seq;
        END IF;
        v_prev := r.entry_hash;
    END LOOP;
    RETURN NULL;
END $$;
"""


def isolate_tenant_table(table: str, key: str = "org_id") -> list[str]:
    """ENABLE and FORCE RLS on ``table`` with one policy, USING and WITH CHECK, keyed on
    ``key`` = the transaction's ``fusion.org_id`` (unset or empty: no rows)."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY org_isolation ON {table} USING ({key} = {CURRENT_ORG}) "
        f"WITH CHECK ({key} = {CURRENT_ORG})",
    ]


def release_tenant_table(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS org_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> list[str]:
    """The application role gets ``privileges`` on ``table``, the system role what its
    functions need."""
    return [
        f"GRANT {privileges} ON {table} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}",
    ]


def system_function_owner(signature: str) -> list[str]:
    """``signature`` becomes a narrow system path: owned by the BYPASSRLS system role,
    callable by the application role and nobody else."""
    return [
        f"ALTER FUNCTION {signature} OWNER TO {SYSTEM_ROLE}",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}",
    ]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


# The psql variable an offline script takes the password from (fusion.db.migrate says why).
APP_PASSWORD_VARIABLE = APP_PASSWORD_PLACEHOLDER


def _offline_password_note() -> None:
    op.get_context().impl.static_output(
        f"-- The {APP_ROLE} role's password is not in this script. Apply it with psql,\n"
        f"-- giving the password as a variable: psql -v {APP_PASSWORD_VARIABLE}='...' -f FILE\n"
        f"-- (an empty value leaves the role's password as it is)."
    )


def upgrade() -> None:
    settings = op.get_context().config.attributes.get("settings")
    bind = op.get_bind()
    op.execute(
        f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SYSTEM_ROLE}') THEN
            CREATE ROLE {SYSTEM_ROLE} NOLOGIN NOSUPERUSER BYPASSRLS NOINHERIT;
        END IF;
        END $$"""
    )
    # Values go through set_config so nothing is spliced into SQL text.
    timeouts = {
        "st": str(settings.db_statement_timeout_ms if settings else 30000),
        "it": str(settings.db_idle_in_transaction_timeout_ms if settings else 60000),
    }
    if op.get_context().as_sql:
        # An offline script for a DBA: the password is never written into it; psql fills in
        # the named variable when the script is applied (psql -v fusion_app_password=...).
        _offline_password_note()
        op.execute(
            text(
                f"SELECT set_config('fusion.m_pw', :'{APP_PASSWORD_VARIABLE}', true), "
                "set_config('fusion.m_st', :st, true), set_config('fusion.m_it', :it, true)"
            ).bindparams(**timeouts)
        )
    else:
        bind.execute(
            text(
                "SELECT set_config('fusion.m_pw', :pw, true), "
                "set_config('fusion.m_st', :st, true), set_config('fusion.m_it', :it, true)"
            ),
            {"pw": (settings.app_db_password if settings else None) or "", **timeouts},
        )
    op.execute(
        f"""DO $$ BEGIN
        IF current_setting('fusion.m_pw') <> '' THEN
            EXECUTE format('ALTER ROLE {APP_ROLE} PASSWORD %L', current_setting('fusion.m_pw'));
        END IF;
        EXECUTE format('ALTER ROLE {APP_ROLE} IN DATABASE %I SET statement_timeout = %L',
                       current_database(), current_setting('fusion.m_st') || 'ms');
        EXECUTE format('ALTER ROLE {APP_ROLE} IN DATABASE %I SET '
                       'idle_in_transaction_session_timeout = %L',
                       current_database(), current_setting('fusion.m_it') || 'ms');
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database());
        END $$"""
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}, {SYSTEM_ROLE}")
    for table in GLOBAL_TABLES:
        _run(grant_app(table, "SELECT, INSERT, UPDATE"))
    _run(grant_app("orgs", "SELECT, INSERT, UPDATE, DELETE"))
    _run(isolate_tenant_table("orgs", key="id"))
    for table in TENANT_TABLES:
        privileges = "SELECT, INSERT" if table == "audit_logs" else "SELECT, INSERT, UPDATE, DELETE"
        _run(grant_app(table, privileges))
        _run(isolate_tenant_table(table))
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM {SYSTEM_ROLE}")
    op.execute(ENQUEUE_JOB)
    op.execute(CLAIM_NEXT_JOB)
    _run(system_function_owner(CLAIM_SIGNATURE))
    op.execute(AUDIT_HASH)
    op.execute(AUDIT_CHAIN)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_verify(uuid)")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_change ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_chain ON audit_logs")
    op.execute("DROP FUNCTION IF EXISTS audit_logs_refuse()")
    op.execute("DROP FUNCTION IF EXISTS audit_logs_chain()")
    op.execute(
        "DROP FUNCTION IF EXISTS audit_entry_hash(text, uuid, bigint, text, uuid, text, text, "
        "uuid, jsonb, jsonb, timestamptz)"
    )
    op.execute(f"DROP FUNCTION IF EXISTS {CLAIM_SIGNATURE}")
    op.execute(
        "DROP FUNCTION IF EXISTS enqueue_job(uuid, text, text, jsonb, uuid, integer, "
        "timestamptz, integer, text)"
    )
    for table in ("orgs", *TENANT_TABLES):
        _run(release_tenant_table(table))
    # Roles are cluster-wide and may serve other databases: revoke here, drop only if unused.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}, {SYSTEM_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {APP_ROLE}, {SYSTEM_ROLE}")
    op.execute(
        f"""DO $$ BEGIN
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {APP_ROLE}', current_database());
        EXECUTE format('ALTER ROLE {APP_ROLE} IN DATABASE %I RESET ALL', current_database());
        BEGIN
            DROP ROLE IF EXISTS {APP_ROLE};
            DROP ROLE IF EXISTS {SYSTEM_ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'fusion roles still used by another database; kept';
        END;
        END $$"""
    )
