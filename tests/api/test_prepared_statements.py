"""The statements nearly every request sends are prepared once per database connection
(fusion.db.prepared): a new connection prepares them on its first request and executes them
by name after that; a connection the database dropped is replaced and its successor prepares
them again; a rolled-back request keeps what its connection prepared; and an engine made not
to prepare (FUSION_DB_PREPARED_STATEMENTS=false, for PgBouncer in transaction mode) sends the
plain statements and enqueues just the same."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from fusion.audit import service as audit
from fusion.auth import sessions
from fusion.config import Settings
from fusion.jobs import service as jobs
from tests.api.conftest import Team, make_team
from tests.api.kit import make_kit
from tests.support.api import running_app

# The member read, the enqueue and the audit entry: what a POST /jobs prepares.
ENQUEUE_PATH = (sessions._ACTIVE_MEMBER, jobs._INSERT, audit._INSERT)
NAMES = {p.name for p in ENQUEUE_PATH}


def _sent(engine: Engine) -> list[str]:
    """The first line of every statement sent on ``engine`` from now on."""
    seen: list[str] = []

    def executing(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement.lstrip().split("\n")[0])

    event.listen(engine, "before_cursor_execute", executing)
    return seen


def _prepared(seen: list[str]) -> set[str]:
    return {s.split()[1] for s in seen if s.startswith("PREPARE ")}


def _executed(seen: list[str]) -> list[str]:
    return [s.split()[1].split("(")[0] for s in seen if s.startswith("EXECUTE ")]


def _jobs_on(engine: Engine, store: uuid.UUID) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM jobs WHERE store_id = :s")
        return int(conn.execute(query, {"s": store}).scalar_one())


@pytest.fixture
def enqueue(team_a: Team, admin_engine: Engine) -> Iterator[tuple[str, dict[str, str]]]:
    store = make_kit(admin_engine, team_a.org_id, None)["store_id"]
    yield f"/orgs/{team_a.org_id}/jobs", {"job_type": "list_products", "store_id": str(store)}


def test_a_new_connection_prepares_once_and_then_executes_by_name(
    app: Flask, team_a: Team, admin_engine: Engine, enqueue: tuple[str, dict[str, str]]
) -> None:
    path, body = enqueue
    engine = app.extensions["fusion"].database.engine
    store = uuid.UUID(body["store_id"])
    before = _jobs_on(admin_engine, store)
    # Given a process whose pool holds no connection yet
    engine.dispose()
    seen = _sent(engine)
    # When the operator enqueues a job, then two more
    assert team_a.operator.post(path, json=body).status_code == 202
    first = list(seen)
    seen.clear()
    assert [team_a.operator.post(path, json=body).status_code for _ in range(2)] == [202, 202]
    # Then the first request prepared the member read, the enqueue and the audit entry and
    # executed them by name; the next two only executed them, and all three jobs are stored
    assert _prepared(first) == NAMES
    assert sorted(_executed(first)) == sorted(NAMES)
    assert _prepared(seen) == set()
    assert sorted(_executed(seen)) == sorted(list(NAMES) * 2)
    others = [s.split("(")[0] for s in seen if not s.startswith("EXECUTE ")]
    assert others == ["SELECT set_config"] * 2  # the org's stamp: nothing else is sent
    assert _jobs_on(admin_engine, store) == before + 3


def test_a_connection_the_database_dropped_is_replaced_and_prepares_again(
    app: Flask, team_a: Team, admin_engine: Engine, enqueue: tuple[str, dict[str, str]]
) -> None:
    path, body = enqueue
    engine = app.extensions["fusion"].database.engine
    # Given a pooled connection that has prepared the enqueue's statements
    engine.dispose()
    assert team_a.operator.post(path, json=body).status_code == 202
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # the one connection
    # When the database ends that connection's backend (a restart, a failover, an operator)
    with admin_engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    seen = _sent(engine)
    # Then the next enqueue succeeds on a new connection, which prepares them again
    assert team_a.operator.post(path, json=body).status_code == 202
    assert _prepared(seen) == NAMES
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_a_refused_request_keeps_what_its_connection_prepared(
    app: Flask, team_a: Team, admin_engine: Engine, enqueue: tuple[str, dict[str, str]]
) -> None:
    path, body = enqueue
    engine = app.extensions["fusion"].database.engine
    engine.dispose()
    seen = _sent(engine)
    # Given a request refused after the caller's read and the enqueue were prepared and run
    # (a store that does not exist: the transaction is rolled back)
    unknown = {**body, "store_id": str(uuid.uuid4())}
    assert team_a.operator.post(path, json=unknown).status_code == 404
    assert sessions._ACTIVE_MEMBER.name in _prepared(seen)
    refused = _prepared(seen)
    seen.clear()
    # When the next request comes on the same connection
    assert team_a.operator.post(path, json=body).status_code == 202
    # Then what the refused one prepared is executed without being prepared again (a
    # prepared statement outlives a rollback), and only the rest is prepared now
    assert _prepared(seen) == NAMES - refused
    assert sorted(_executed(seen)) == sorted(NAMES)


@pytest.fixture
def unprepared_app(settings: Settings) -> Iterator[Flask]:
    with running_app(dataclasses.replace(settings, db_prepared_statements=False)) as app:
        yield app


def test_an_engine_made_not_to_prepare_sends_the_plain_statements(
    unprepared_app: Flask, admin_engine: Engine
) -> None:
    team = make_team(unprepared_app.test_client(), "Pooled")
    store = make_kit(admin_engine, team.org_id, None)["store_id"]
    body = {"job_type": "list_products", "store_id": str(store)}
    before = _jobs_on(admin_engine, store)  # the kit's own
    seen = _sent(unprepared_app.extensions["fusion"].database.engine)
    # When jobs are enqueued through an API whose database must not prepare statements
    path = f"/orgs/{team.org_id}/jobs"
    statuses = [team.operator.post(path, json=body).status_code for _ in range(2)]
    # Then they are accepted and stored, and nothing was prepared or executed by name
    assert statuses == [202, 202]
    assert _jobs_on(admin_engine, store) == before + 2
    assert not [s for s in seen if s.startswith(("PREPARE", "EXECUTE"))]
    assert any(s.startswith("WITH ins AS") for s in seen)  # the enqueue, sent as it is


def test_a_migration_that_changes_a_returned_type_costs_one_request_not_the_connection(
    app: Flask, team_a: Team, admin_engine: Engine, enqueue: tuple[str, dict[str, str]]
) -> None:
    path, body = enqueue
    engine = app.extensions["fusion"].database.engine
    # Given a connection that has prepared the enqueue, which returns jobs.priority
    engine.dispose()
    assert team_a.operator.post(path, json=body).status_code == 202
    with admin_engine.begin() as admin:  # When a migration widens that column
        admin.execute(text("ALTER TABLE jobs ALTER COLUMN priority TYPE integer"))
    try:
        seen = _sent(engine)
        # Then the next enqueue fails (its prepared plan no longer matches the table) ...
        first = team_a.operator.post(path, json=body)
        # ... and the one after it succeeds on a new connection, which prepares afresh
        second = team_a.operator.post(path, json=body)
        assert first.status_code == 500 and second.status_code == 202, second.json
        assert jobs._INSERT.name in _prepared(seen)
    finally:
        with admin_engine.begin() as admin:
            admin.execute(text("ALTER TABLE jobs ALTER COLUMN priority TYPE smallint"))
        engine.dispose()
