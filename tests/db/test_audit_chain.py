"""The audit log is append-only in the database and hash-chained per org."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from fusion.db.session import Database


def _record(database: Database, org: uuid.UUID, action: str) -> None:
    with database.org_session(org) as session:
        session.execute(
            text(
                "INSERT INTO audit_logs (id, org_id, actor_type, action, resource_type, after) "
                "VALUES (gen_random_uuid(), :org, 'user', :action, 'store', "
                "CAST(:after AS jsonb))"
            ),
            {"org": org, "action": action, "after": '{"name": "Main"}'},
        )


def _verify(database: Database, org: uuid.UUID) -> int | None:
    with database.org_session(org) as session:
        return session.execute(text("SELECT audit_verify(:org)"), {"org": org}).scalar_one()


def test_entries_chain_per_org_and_verify_intact(
    database: Database, org_a: uuid.UUID, org_b: uuid.UUID
) -> None:
    for action in ("store.create", "store.update", "store.delete"):
        _record(database, org_a, action)
    _record(database, org_b, "store.create")

    with database.org_session(org_a) as session:
        rows = session.execute(
            text("SELECT seq, prev_hash, entry_hash FROM audit_logs ORDER BY seq")
        ).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == ""
    assert [r.prev_hash for r in rows[1:]] == [r.entry_hash for r in rows[:-1]]
    assert _verify(database, org_a) is None
    assert _verify(database, org_b) is None


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_logs SET action = 'x'", "DELETE FROM audit_logs"]
)
def test_the_application_cannot_change_or_remove_entries(
    database: Database, org_a: uuid.UUID, statement: str
) -> None:
    _record(database, org_a, "store.create")
    with pytest.raises(DBAPIError, match="permission denied"):
        with database.org_session(org_a) as session:
            session.execute(text(statement))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_logs SET action = 'x'", "DELETE FROM audit_logs", "TRUNCATE audit_logs"],
)
def test_even_the_owner_is_refused_by_the_triggers(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, statement: str
) -> None:
    _record(database, org_a, "store.create")
    with pytest.raises(DBAPIError, match="append-only"):
        with admin_engine.begin() as conn:
            conn.execute(text(statement))


def test_tampering_is_detected_at_the_altered_entry(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    for action in ("a", "b", "c"):
        _record(database, org_a, action)
    with admin_engine.begin() as conn:  # a superuser bypassing the triggers, as an attacker would
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                'UPDATE audit_logs SET after = \'{"name": "Evil"}\' WHERE seq = 2 AND org_id = :o'
            ),
            {"o": org_a},
        )
    assert _verify(database, org_a) == 2
