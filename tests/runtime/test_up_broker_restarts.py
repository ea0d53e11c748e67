"""A broker restart is a blip, not an outage: ``fusion up`` with every child running (API,
worker, beat, Flower, sandboxes) over a Redis restarted four times under load, and a child
killed outright, keeps answering and completes every job once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import Engine, text

import boot
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch, service
from fusion.jobs.service import JobSpec
from tests.jobs.conftest import executions  # noqa: F401  (the shared fixture)
from tests.runtime.test_up import free_port, wait_ready
from tests.support.servers import RedisServer
from tests.support.workers import FAST, ROOT
from workers.dispatcher import CeleryDispatcher, producer_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("executions")]

JOBS = 400
RESTARTS = 4
REDIS_DOWN_S = 1.0
BETWEEN_RESTARTS_S = 4.0


@pytest.fixture
def hub(
    settings: Settings, broker: RedisServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """``fusion up`` on the run's database and this test's own Redis (neither embedded)."""
    assert settings.database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    api_port = free_port()
    env.update(FAST)
    env.update(
        {
            "FUSION_ENV": "test",
            "FUSION_HOME": str(tmp_path / "home"),
            "FUSION_DATABASE_URL": settings.database_url,
            "FUSION_REDIS_URL": broker.url,
            "FUSION_API_PORT": str(api_port),
            "FUSION_FLOWER_PORT": str(free_port()),
            # never the default 8001: another test's (or xdist worker's) hub may be up
            "FUSION_STREAMS_PORT": str(free_port()),
            "FUSION_BEAT_LEASE_TTL_S": "3",
            "PYTHONPATH": str(ROOT),
        }
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fusion.cli.main import cli; cli()", "up", "--grace", "8"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, log, api_port
    finally:
        if proc.poll() is None:
            seen = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait()
            for child in seen:
                if child.is_running():
                    child.kill()


class Prober(threading.Thread):
    """Asks the API's /healthz every 0.2 s and remembers every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.asked = 0
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.asked += 1
            try:
                status = requests.get(self.url, timeout=5).status_code
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
                continue
            if status != 200:
                self.failures.append(f"HTTP {status}")


def completed(admin_engine: Engine) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'completed'")).scalar_one()
        )


def wait_for_line(log: Path, line: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while line not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()[-5000:]
        assert time.monotonic() < deadline, f"{line!r} not seen:\n{log.read_text()[-5000:]}"
        time.sleep(0.2)


def child_pid(up_pid: int, needle: str) -> int:
    for child in psutil.Process(up_pid).children():
        if needle in " ".join(child.cmdline()):
            return int(child.pid)
    raise AssertionError(f"no child of fusion up runs {needle!r}")


def test_up_rides_out_four_redis_restarts_and_a_killed_worker_under_load(
    hub: tuple[subprocess.Popen[bytes], Path, int],
    broker: RedisServer,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    proc, log, api_port = hub
    api = f"http://127.0.0.1:{api_port}"
    # Given fusion up with every child ready, and jobs that keep its worker busy
    wait_ready(f"{api}/readyz", proc, log)
    app = producer_app()
    app.conf.broker_url = broker.url
    boot.load_jobs()
    dispatch.install(CeleryDispatcher(app))
    try:
        with database.org_session(org_a) as session:
            service.enqueue_many(
                session,
                org_id=org_a,
                specs=[JobSpec("test.record", payload={"sleep_s": 0.2}) for _ in range(JOBS)],
            )
    finally:
        dispatch.install(None)
    prober = Prober(f"{api}/healthz")
    prober.start()
    started = time.monotonic()
    # When Redis is restarted (empty) four times while the jobs run, and half-way through
    # the worker is killed outright
    for restart in range(RESTARTS):
        time.sleep(BETWEEN_RESTARTS_S)
        broker.stop()
        time.sleep(REDIS_DOWN_S)
        broker.start()
        if restart == RESTARTS // 2 - 1:
            os.killpg(child_pid(proc.pid, " worker --queues "), signal.SIGKILL)
            wait_for_line(log, "restarted worker", proc)
    # Then every job completes, each exactly once
    deadline = time.monotonic() + 240
    while completed(admin_engine) < JOBS:
        assert proc.poll() is None, log.read_text()[-5000:]
        assert time.monotonic() < deadline, (completed(admin_engine), log.read_text()[-8000:])
        time.sleep(0.5)
    drained_s = time.monotonic() - started
    with admin_engine.connect() as conn:
        runs = conn.execute(
            text("SELECT count(*), count(DISTINCT job_id) FROM test_executions")
        ).one()
    assert tuple(runs) == (JOBS, JOBS)
    # and the API answered throughout, and is ready again
    prober.done.set()
    prober.join(10)
    assert prober.failures == [], prober.failures[:5]
    assert prober.asked > 20
    assert requests.get(f"{api}/readyz", timeout=5).status_code == 200
    # and fusion up restarted the killed worker instead of stopping the hub, saying so
    output = log.read_text(errors="replace")
    assert "worker  | " in output
    assert "worker exited unexpectedly" in output and "restarted worker" in output
    for name in ("api", "beat", "flower", "sandbox"):
        assert f"{name} exited unexpectedly" not in output, output[-5000:]
    assert "Unrecoverable error" not in output
    # and a SIGTERM still stops it all cleanly
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, output[-5000:]
    print(f"{JOBS} jobs over {RESTARTS} Redis restarts and a killed worker in {drained_s:.0f}s")
