"""Fixtures shared by the whole suite: a migrated database per run, a private Redis, orgs.

Given/when/then tests talk to real servers. Each test starts from empty tables: rows are
truncated after it (workers in other processes make savepoint rollback impossible).

Under pytest-xdist (``bin/test`` runs the whole suite on several workers) every worker is a
session of its own: its own scratch database, Redis, FUSION_HOME and temporary directories,
and free ports picked by the kernel; nothing here is shared between workers but the Postgres
cluster (tests/support/servers.py says what that takes).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import redis as redis_lib
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from fusion.config import Settings
from fusion.db.session import Database, make_engine
from fusion.jobs.engine import Engine as JobEngine
from fusion.models import Base
from tests.support.servers import (
    RedisServer,
    ScratchDatabase,
    admin_postgres_url,
    per_worker_redis_url,
    upgrade_scratch,
    xdist_worker,
)

# Fixtures more than one folder uses: the API app (api/, cli/) and the worker environment
# (workers/, cli/, jobs/, approvals/).
pytest_plugins = ("tests.support.api", "tests.support.workers")

THROTTLE_VARIABLES = (
    "FUSION_SIGNUP_PER_IP_PER_MINUTE",
    "FUSION_SIGNUP_PER_MINUTE",
    "FUSION_LOGIN_PER_IP_PER_MINUTE",
    "FUSION_LOGIN_PER_MINUTE",
    "FUSION_ORG_CREATE_PER_IP_PER_MINUTE",
    "FUSION_ORG_CREATE_PER_MINUTE",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers, the modules with slow tests come first (stable otherwise): bin/test
    hands out whole modules in collection order (``--no-loadscope-reorder``), so the long
    fault tests start at once instead of finishing last on one worker."""
    if not xdist_worker():
        return
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.fixture(scope="session")
def test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchDatabase]:
    database = ScratchDatabase(admin_postgres_url())
    database.create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    if os.environ.get("FUSION_TEST_REDIS_URL"):
        yield None
        return
    with _started_redis() as server:
        yield server


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    """A private redis-server of the test's own, for a test that restarts or inspects its
    broker (the session's Redis is shared)."""
    with _started_redis() as server:
        yield server


@contextmanager
def _started_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def hub_env(
    test_database: ScratchDatabase,
    redis_server: RedisServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The FUSION_* environment of this test run, for in-process settings and child processes."""
    home = tmp_path_factory.mktemp("fusion-home")
    shared_redis = os.environ.get("FUSION_TEST_REDIS_URL")
    return {
        "FUSION_ENV": "test",
        "FUSION_HOME": str(home),
        "FUSION_DATABASE_URL": test_database.url,
        "FUSION_REDIS_URL": per_worker_redis_url(shared_redis)
        if shared_redis
        else (redis_server.url if redis_server else ""),
        # The suite signs up hundreds of people from one address: the sign-up, login and
        # org-creation throttles are tested on apps of their own (tests/api/test_throttles.py).
        **dict.fromkeys(THROTTLE_VARIABLES, str(10**6)),
    }


@pytest.fixture(scope="session")
def settings(test_database: ScratchDatabase, hub_env: dict[str, str]) -> Settings:
    """The run's settings, its database migrated to the head. A test that migrates a scratch
    database of its own asks for this first: the run's database then holds grants to the
    cluster-wide roles, so they exist already and a downgrade to base never drops them from
    under the other workers."""
    settings = Settings.from_env(hub_env)
    upgrade_scratch(test_database.admin_url, settings)
    return settings


@pytest.fixture(scope="session")
def admin_engine(settings: Settings) -> Iterator[Engine]:
    """The owner's connection: bypasses RLS; for arranging and asserting, never for the app."""
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    """The application's handle, connected as the non-owner application role."""
    assert settings.app_database_url
    db = Database(settings.app_database_url)
    yield db
    db.dispose()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis_lib.Redis]:
    """A client on the run's private Redis."""
    assert settings.redis_url
    client = redis_lib.Redis.from_url(settings.redis_url)
    yield client
    client.close()


TRUNCATE_ATTEMPTS = 5
DEADLOCK = "40P01"


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    uses_db = {"settings", "database", "admin_engine"} & set(request.fixturenames)
    engine = request.getfixturevalue("admin_engine") if uses_db else None
    yield
    if engine is None:
        return
    tables = ", ".join(
        t.name for t in Base.metadata.sorted_tables if t.name not in ("plugins", "plugin_contracts")
    )
    # Worker processes of a module-scoped fixture may still be in a transaction (a sweep, a
    # beat-driven job): TRUNCATE then waits for them, and Postgres may pick it as the victim
    # of a deadlock. The workers' transactions are short; the truncate is simply tried again.
    for attempt in range(1, TRUNCATE_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                # replica mode skips the audit log's append-only triggers (superuser only).
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text(f"TRUNCATE {tables} CASCADE"))
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != DEADLOCK or attempt == TRUNCATE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)


def make_org(admin_engine: Engine, name: str) -> uuid.UUID:
    org_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orgs (id, name, slug) VALUES (:id, :name, :slug)"),
            {"id": org_id, "name": name, "slug": f"{name.lower()}-{org_id.hex[:8]}"},
        )
    return org_id


@pytest.fixture
def org_a(admin_engine: Engine) -> uuid.UUID:
    return make_org(admin_engine, "Alpha")


@pytest.fixture
def org_b(admin_engine: Engine) -> uuid.UUID:
    return make_org(admin_engine, "Bravo")


@pytest.fixture
def engine_settings(settings: Settings) -> Settings:
    """Settings for an in-process job engine: a short lease, so a lost one shows quickly."""
    return replace(settings, lease_s=3)


@pytest.fixture
def job_engine(engine_settings: Settings, database: Database) -> Iterator[JobEngine]:
    """The real job engine in this process (its lease keeper running), over the run's
    database; ``execute(job_id)`` runs one job as a worker would."""
    engine = JobEngine(engine_settings, database, db_patience_s=5)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
