"""``fusion db current|history|upgrade --sql|downgrade --sql`` as a DBA runs them: real CLI
processes against a real, empty Postgres database, and the offline script applied with psql."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from fusion.config import Settings
from fusion.db.migrate import APP_PASSWORD_PLACEHOLDER, alembic_config, migrations_dir
from fusion.db.session import make_engine
from fusion.models import Base
from tests.support.servers import (
    ROLE_PASSWORD_LOCK,
    ScratchDatabase,
    admin_postgres_url,
    cluster_lock,
)

# Set in the environment of every command below: it must never reach an offline script.
APP_PASSWORD = "app-pw-never-in-a-script-7f3a"
RUN_CLI = "import sys; from fusion.cli.main import cli; sys.exit(cli(prog_name='fusion'))"


def fusion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def empty_database(settings: Settings) -> Iterator[ScratchDatabase]:
    # settings first: the run's database is migrated, so the cluster-wide roles exist. These
    # upgrades set the application role's password (dba_env): one test process at a time.
    database = ScratchDatabase(admin_postgres_url())
    database.create()
    try:
        with cluster_lock(database.admin_url, ROLE_PASSWORD_LOCK):
            yield database
    finally:
        database.drop()


@pytest.fixture
def dba_env(tmp_path: Path, empty_database: ScratchDatabase) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    return {
        **env,
        "FUSION_HOME": str(tmp_path / "home"),
        "FUSION_DATABASE_URL": empty_database.url,
        "FUSION_DB_APP_PASSWORD": APP_PASSWORD,
    }


def head_revision() -> str:
    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    assert head
    return head


def revisions() -> list[str]:
    script = ScriptDirectory(str(migrations_dir()))
    return [r.revision for r in script.walk_revisions()]


def tables(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
            return set(rows.scalars()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_current_says_nothing_before_the_first_upgrade_and_the_head_after_it(
    dba_env: dict[str, str],
) -> None:
    # Given an empty database, when current is asked, then it names no revision
    before = fusion(dba_env, "db", "current")
    assert before.returncode == 0, before.stderr
    assert before.stdout.strip() == ""
    # When the database is upgraded, then current names the head
    upgraded = fusion(dba_env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    after = fusion(dba_env, "db", "current")
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == f"{head_revision()} (head)"


def test_history_lists_every_revision_newest_first_without_a_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    env["FUSION_HOME"] = str(tmp_path / "home")
    listed = fusion(env, "db", "history")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if " -> " in line]
    # "0014 -> 0015 (head), ..." : the target revision of each line, in order
    targets = [line.split(" -> ")[1].split(",")[0].split()[0] for line in lines]
    assert targets == revisions()
    assert lines[0].split(",")[0].endswith("(head)")
    assert lines[-1].startswith(f"<base> -> {revisions()[-1]}")


def test_upgrade_sql_is_a_complete_script_with_a_named_placeholder_and_no_secret(
    dba_env: dict[str, str], empty_database: ScratchDatabase
) -> None:
    # Given the application role's password set in the environment
    # When the upgrade is rendered offline
    rendered = fusion(dba_env, "db", "upgrade", "--sql")
    # Then the script creates every table, reads the password from a named psql variable, says
    # so at its top, and carries the password nowhere (nor does anything else printed)
    assert rendered.returncode == 0, rendered.stderr
    script = rendered.stdout
    for table in Base.metadata.tables:
        assert f"CREATE TABLE {table} (" in script, table
    assert f":'{APP_PASSWORD_PLACEHOLDER}'" in script
    assert APP_PASSWORD_PLACEHOLDER in "\n".join(script.splitlines()[:4])
    assert APP_PASSWORD not in script and APP_PASSWORD not in rendered.stderr
    assert APP_PASSWORD_PLACEHOLDER in rendered.stderr
    # and nothing was done to the database
    assert tables(empty_database.url) == set()

    # When a DBA applies it with psql, giving the variable
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed: the script was checked, not applied")
    url = empty_database.url.replace("postgresql+psycopg2://", "postgresql://")
    applied = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"{APP_PASSWORD_PLACEHOLDER}=",
         "-d", url],
        input=script, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Then the database has every table and is at the head, as an online upgrade leaves it
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert tables(empty_database.url) == set(Base.metadata.tables)
    current = fusion(dba_env, "db", "current")
    assert current.stdout.strip() == f"{head_revision()} (head)"


def test_downgrade_sql_needs_a_range_and_then_drops_every_table(dba_env: dict[str, str]) -> None:
    refused = fusion(dba_env, "db", "downgrade", "--sql")
    assert refused.returncode == 2
    assert "FROM:TO" in refused.stderr
    rendered = fusion(dba_env, "db", "downgrade", "--sql", f"{head_revision()}:base")
    assert rendered.returncode == 0, rendered.stderr
    for table in Base.metadata.tables:
        assert f"DROP TABLE {table}" in rendered.stdout, table
    assert APP_PASSWORD not in rendered.stdout


def test_the_offline_config_needs_no_owner_url() -> None:
    from fusion.config import Settings

    cfg = alembic_config(Settings(), offline=True)
    assert cfg.get_main_option("sqlalchemy.url") == "postgresql+psycopg2://"
