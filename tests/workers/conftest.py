"""Real Celery worker and beat processes for the engine's fault tests.

Every process is started in its own session (so a test can SIGKILL a whole worker) with
the test run's FUSION_* environment plus short leases, sweeps and stale windows, and is
stopped by the fixture that started it, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import boot
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from tests.support.workers import ROOT
from workers.dispatcher import CeleryDispatcher, producer_app


class CeleryProcess:
    """One ``celery -A workers.app`` child; its output goes to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.app", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc is not None and self.proc.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, f"{text!r} not seen:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acks, nothing tidied."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


class Celery:
    """Starts workers and beat for one test and stops every one of them afterwards."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.started: list[CeleryProcess] = []

    def worker(
        self, name: str, *, queues: str = "default", concurrency: int = 4, **env: str
    ) -> CeleryProcess:
        args = [
            "worker", "--queues", queues, "--pool", "threads", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        process = CeleryProcess(args, {**self.env, **env}, self.tmp / f"{name}.log")
        self.started.append(process.start())
        process.wait_for("ready.")
        return process

    def beat(self, **env: str) -> CeleryProcess:
        args = ["beat", "--loglevel", "INFO", "--schedule", str(self.tmp / "beat-schedule")]
        process = CeleryProcess(args, {**self.env, **env}, self.tmp / "beat.log")
        self.started.append(process.start())
        process.wait_for("beat: Starting")
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def celery(worker_env: dict[str, str], tmp_path: Path, settings: Settings) -> Iterator[Celery]:
    processes = Celery(worker_env, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def publisher(worker_env: dict[str, str]) -> Iterator[CeleryDispatcher]:
    """The real Celery dispatcher installed in this test process, on the test broker."""
    import celeryconfig

    app = producer_app()
    app.conf.broker_url = worker_env["FUSION_REDIS_URL"]
    assert celeryconfig.RUN_JOB
    dispatcher = CeleryDispatcher(app)
    boot.load_jobs()
    dispatch.install(dispatcher)
    try:
        yield dispatcher
    finally:
        dispatch.install(None)


def wait_until(condition, timeout: float = 60.0, every: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(every)


def app_database(settings: Settings) -> Database:
    assert settings.app_database_url
    return Database(settings.app_database_url)


from tests.jobs.conftest import executions  # noqa: E402,F401  (the shared fixture)
from tests.support import workers as _workers  # noqa: E402

worker_env = _workers.worker_env  # the fixture is tests.support.workers'; modules import it here
