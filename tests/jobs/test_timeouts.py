"""The application role's own timeouts end a session left open in a transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from fusion.config import Settings
from fusion.db import migrate
from fusion.db.session import Database, make_engine
from tests.support.servers import ScratchDatabase, admin_postgres_url


@pytest.fixture
def short_timeouts(settings: Settings, hub_env: dict[str, str]) -> Iterator[Settings]:
    # settings first: the run's database is migrated, so the cluster-wide roles exist.
    scratch = ScratchDatabase(admin_postgres_url())
    scratch.create()
    try:
        settings = Settings.from_env(
            {
                **hub_env,
                "FUSION_DATABASE_URL": scratch.url,
                "FUSION_DB_STATEMENT_TIMEOUT_MS": "1000",
                "FUSION_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "500",
            }
        )
        migrate.upgrade(settings)
        yield settings
    finally:
        scratch.drop()


def test_the_app_role_carries_the_configured_timeouts(
    database: Database, settings: Settings
) -> None:
    with database.engine.connect() as conn:
        values = dict(
            conn.execute(
                text(
                    "SELECT name, setting::int FROM pg_settings WHERE name IN "
                    "('statement_timeout', 'idle_in_transaction_session_timeout')"
                )
            ).all()
        )
    assert values == {
        "statement_timeout": settings.db_statement_timeout_ms,
        "idle_in_transaction_session_timeout": settings.db_idle_in_transaction_timeout_ms,
    }


def test_a_transaction_left_open_is_ended_and_a_long_statement_is_cancelled(
    short_timeouts: Settings,
) -> None:
    assert short_timeouts.app_database_url
    engine = make_engine(short_timeouts.app_database_url, poolclass=NullPool)
    try:
        # Given a session of the application role that opens a transaction and goes idle
        conn = engine.connect()
        tx = conn.begin()
        conn.execute(text("SELECT 1"))
        time.sleep(1.5)
        # Then the server has ended it: the next statement finds the session gone
        with pytest.raises(DBAPIError) as ended:
            conn.execute(text("SELECT 1"))
        assert ended.value.connection_invalidated
        tx.rollback()
        conn.close()
        # And a statement running past the statement timeout is cancelled
        with engine.connect() as conn2, pytest.raises(DBAPIError) as cancelled:
            conn2.execute(text("SELECT pg_sleep(5)"))
        assert "statement timeout" in str(cancelled.value)
    finally:
        engine.dispose()
