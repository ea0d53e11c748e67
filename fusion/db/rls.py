"""SQL that migrations use to put a table under the tenancy rules (one way to do it, everywhere).

A migration that adds a tenant table calls :func:`isolate_tenant_table` and :func:`grant_app`;
the test suite checks every table with an ``org_id`` column has RLS enabled, forced and a policy.
"""

from __future__ import annotations

APP_ROLE = "fusion_app"
SYSTEM_ROLE = "fusion_system"  # NOLOGIN, BYPASSRLS: owns the narrow SECURITY DEFINER functions
CURRENT_ORG = "(SELECT NULLIF(current_setting('fusion.org_id', true), '')::uuid)"


def isolate_tenant_table(table: str, key: str = "org_id") -> list[str]:
    """Statements that ENABLE and FORCE RLS on ``table`` with one policy, USING and WITH CHECK,
    keyed on ``key`` = the transaction's ``fusion.org_id`` (unset or empty: no rows)."""
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
    """Grant the application role DML on ``table`` and the system role what its functions need."""
    return [
        f"GRANT {privileges} ON {table} TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}",
    ]


def system_function_owner(signature: str) -> list[str]:
    """Make ``signature`` (e.g. ``claim_next_job(text, text[], integer)``) a narrow system path:
    owned by the BYPASSRLS system role, callable by the application role and nobody else."""
    return [
        f"ALTER FUNCTION {signature} OWNER TO {SYSTEM_ROLE}",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}",
    ]
