"""``fusion worker`` and ``fusion beat`` start real Celery processes on the right queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from fusion.cli.main import cli
from tests.support.workers import ROOT


def test_an_unknown_platform_is_refused() -> None:
    result = CliRunner().invoke(cli, ["worker", "--platform", "ebay"])
    assert result.exit_code == 2
    assert "ebay" in result.output


def test_fusion_worker_serves_its_platform_queue_with_threads(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    fusion = str(Path(sys.executable).parent / "fusion")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [fusion, "worker", "--platform", "etsy", "--concurrency", "3"],
            cwd=ROOT,
            env=worker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "ready." not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        banner = log.read_text()
        assert ".> etsy " in banner and ".> default " not in banner
        assert "concurrency: 3 (thread)" in banner
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
