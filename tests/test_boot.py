"""boot.start: the one start-up path of the API and the workers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import boot
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from tests.jobs.conftest import RecordingDispatcher

ROOT = Path(__file__).resolve().parents[1]


def test_start_loads_the_named_job_modules_and_installs_the_dispatcher(
    settings: Settings, database: Database
) -> None:
    # Given settings naming an extra job module, and a dispatcher to install
    named = dataclasses.replace(settings, job_modules=("tests.jobs.handlers",))
    recording = RecordingDispatcher()
    previous = dispatch.installed()
    try:
        # When the process starts
        loaded = boot.start(named, database, dispatcher=recording)
        # Then the built-in modules and the named one are loaded, in that order, and the
        # dispatcher is the one every enqueue publishes through
        assert loaded == [*(m.__name__ for m in boot.JOB_MODULES), "tests.jobs.handlers"]
        assert dispatch.installed() is recording
    finally:
        dispatch.install(previous)


def test_boot_imports_neither_the_api_nor_the_workers() -> None:
    # import-linter takes packages only, so the independence of api and workers through
    # boot (which both import) is checked here, in a fresh interpreter.
    code = (
        "import sys, boot; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'api', 'workers', 'flask'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
