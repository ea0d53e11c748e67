"""The production install carries only production: the project installed without extras, in a
venv of its own, runs every production entry point (API, streams, worker, beat, Flower, the
migrations) and has none of the embedded servers' or the sandboxes' packages.

What is installed is what the Dockerfile copies, installed the way it installs it: a fresh venv
(no system site-packages), ``pip install <copy>`` from the package index (the pip cache makes a
second run quick). About 35 s with a warm pip cache (8 s of it pip), 50 s with a cold one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from fusion.db import migrate
from fusion.db.session import make_engine
from fusion.runtime.extras import EXTRAS
from tests.support.servers import ScratchDatabase, admin_postgres_url

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 120

EXTRA_MODULES = sorted({module for modules in EXTRAS.values() for module in modules})
# The hub's own modules that need an extra: production never loads them.
DEV_ONLY_MODULES = (
    "fusion.sandbox",
    "fusion.runtime.embedded",
    "fusion.runtime.embedded_postgres",
    "fusion.runtime.embedded_process",
    "fusion.runtime.embedded_redis",
)
# What the image's processes import (Dockerfile, docker-compose.yml, fusion/runtime/services.py).
ENTRY_MODULES = (
    "api.wsgi",
    "api.streams_wsgi",
    "api.serving",
    "api.green",
    "workers.app",
    "workers.flower",
    "boot",
    "celeryconfig",
    "fusion.cli.main",
)


@dataclass(frozen=True)
class Install:
    python: Path
    bin: Path
    cwd: Path  # neither the checkout nor the copy: nothing imports from a source tree

    def run(
        self, *argv: str | Path, env: dict[str, str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in argv],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        if check:
            assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stderr}"
        return done


def dockerfile_sources() -> list[str]:
    """What the Dockerfile's COPY lines take from the checkout."""
    sources: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its venv or any FUSION_* or Python path setting."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FUSION_", "PYTHON", "VIRTUAL_ENV", "CELERY"))
    }
    return {**keep, "PATH": os.defpath, **extra}


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    root = tmp_path_factory.mktemp("production-install")
    source = root / "source"
    source.mkdir()
    for name in dockerfile_sources():
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (--python), which saves bootstrapping a pip.
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-compile", source],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
        env=clean_env(),
    )
    cwd = root / "cwd"
    cwd.mkdir()
    return Install(python=python, bin=venv / "bin", cwd=cwd)


@pytest.fixture
def empty_database(settings: object) -> Iterator[str]:
    # settings first: the run's database is migrated, so the cluster-wide roles exist.
    database = ScratchDatabase(admin_postgres_url())
    database.create()
    try:
        yield database.url
    finally:
        database.drop()


def _prod_env(hub_env: dict[str, str], install: Install, **over: str) -> dict[str, str]:
    return clean_env(**{**hub_env, "PATH": f"{install.bin}{os.pathsep}{os.defpath}", **over})


@pytest.mark.slow
def test_the_install_has_none_of_the_extras(install: Install) -> None:
    code = (
        "import importlib.util, sys, fusion; "
        f"print([m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m)]); "
        "print(fusion.__file__)"
    )
    done = install.run(install.python, "-c", code, env=clean_env())
    found, location = done.stdout.splitlines()
    assert found == "[]"
    # the installed copy, not a source tree
    assert Path(location).is_relative_to(install.python.parents[1])


@pytest.mark.slow
def test_every_production_entry_point_imports_and_starts_without_the_extras(
    install: Install, hub_env: dict[str, str]
) -> None:
    # Importing api.wsgi and api.streams_wsgi builds the apps: boot.start against the database.
    code = (
        "import importlib, sys\n"
        f"for name in {ENTRY_MODULES!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {EXTRA_MODULES!r}"
        f" or m in {DEV_ONLY_MODULES!r}))\n"
    )
    done = install.run(install.python, "-c", code, env=_prod_env(hub_env, install))
    assert done.stdout.strip().splitlines()[-1] == "[]"

    env = _prod_env(hub_env, install)
    # The worker's and beat's Celery app, as `fusion worker` / `fusion beat` exec it.
    report = install.run(install.python, "-m", "celery", "-A", "workers.app", "report", env=env)
    assert "fusion" in report.stdout
    install.run(install.python, "-m", "celery", "-A", "workers.flower", "report", env=env)
    for command in (["--help"], ["worker", "--help"], ["beat", "--help"], ["db", "--help"]):
        install.run(install.bin / "fusion", *command, env=env)


@pytest.mark.slow
def test_the_installed_migrations_bring_an_empty_database_to_head(
    install: Install, hub_env: dict[str, str], empty_database: str
) -> None:
    env = _prod_env(hub_env, install, FUSION_DATABASE_URL=empty_database)
    done = install.run(install.bin / "fusion", "db", "upgrade", env=env)
    assert "database at head" in done.stdout
    heads = ScriptDirectory(str(migrate.migrations_dir())).get_heads()
    engine = make_engine(empty_database, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            applied = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert sorted(applied) == sorted(heads)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_fusion_up_against_servers_of_ones_own_needs_no_extra(
    install: Install, hub_env: dict[str, str]
) -> None:
    # What `fusion up` does before it starts its children, when both URLs are set.
    code = (
        "from fusion.config import Settings\n"
        "from fusion.runtime.embedded import EmbeddedServers\n"
        "from fusion.runtime.services import hub_services\n"
        "with EmbeddedServers(Settings.from_env()) as resolved:\n"
        "    print(sorted(s.name for s in hub_services(resolved)))\n"
    )
    done = install.run(install.python, "-c", code, env=_prod_env(hub_env, install))
    assert done.stdout.splitlines() == [
        "sandboxes skipped: no sandbox extra (pip install 'fusion-stage-hub[sandbox]')",
        "['api', 'beat', 'flower', 'streams', 'worker']",
    ]


@pytest.mark.slow
def test_the_dev_commands_say_which_extra_they_need(
    install: Install, hub_env: dict[str, str]
) -> None:
    env = _prod_env(hub_env, install)
    env.pop("FUSION_DATABASE_URL")
    up = install.run(install.bin / "fusion", "up", env=env, check=False)
    assert up.returncode == 1
    assert "fusion up needs the embedded extra: pip install 'fusion-stage-hub[embedded]'" in (
        up.stderr
    )
    sandbox = install.run(install.bin / "fusion", "sandbox", env=env, check=False)
    assert sandbox.returncode == 1
    assert "fusion sandbox needs the sandbox extra: pip install 'fusion-stage-hub[sandbox]'" in (
        sandbox.stderr
    )
