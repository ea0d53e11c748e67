"""The API under gunicorn, as production runs it, with ``FUSION_LOG_FORMAT=json``: every
request gets an id (the caller's ``X-Request-ID`` when sane, echoed back) and one JSON log
line naming it, the org of the path, method, path (never the query) and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fusion.config import Settings
from tests.support.logs import json_lines
from tests.support.servers import free_port
from tests.support.workers import ROOT


@pytest.fixture(scope="module")
def gunicorn(
    hub_env: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    env.update(hub_env, FUSION_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "api.wsgi:app", f"--bind=127.0.0.1:{port}",
             "--workers=1", "--threads=2", "--no-control-socket"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.RequestException:  # not listening yet, or still booting
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(20)


def _line_of(log: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        lines = [
            line
            for line in json_lines(log.read_text(errors="replace"))
            if line.get("request_id") == request_id
        ]
        if lines:
            return lines[-1]
        assert time.monotonic() < deadline, f"no log line for {request_id}"
        time.sleep(0.1)


def test_the_callers_request_id_is_echoed_and_names_the_requests_json_line(
    gunicorn: tuple[str, Path],
) -> None:
    url, log = gunicorn
    org = uuid.uuid4()
    # When an anonymous caller asks for an org's jobs with its own request id and a query
    answer = requests.get(
        f"{url}/orgs/{org}/jobs?status=failed",
        headers={"X-Request-ID": "trace-abc.123"},
        timeout=10,
    )
    # Then the answer echoes the id, and the request's line names it, the org and the outcome
    assert answer.status_code == 401
    assert answer.headers["X-Request-ID"] == "trace-abc.123"
    line = _line_of(log, "trace-abc.123")
    assert (line["method"], line["path"], line["status"]) == ("GET", f"/orgs/{org}/jobs", 401)
    assert line["org_id"] == str(org)
    assert line["logger"] == "fusion.api.requests" and line["level"] == "info"
    assert isinstance(line["duration_ms"], float) and "time" in line
    assert "status=failed" not in json.dumps(line)  # the query string is never logged


def test_a_request_without_a_sane_id_gets_a_new_one(gunicorn: tuple[str, Path]) -> None:
    url, log = gunicorn
    bad = requests.get(f"{url}/healthz", headers={"X-Request-ID": "no spaces <allowed>"},
                       timeout=10)  # fmt: skip
    none = requests.get(f"{url}/healthz", timeout=10)
    made = [bad.headers["X-Request-ID"], none.headers["X-Request-ID"]]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in made)
    assert made[0] != made[1]
    assert _line_of(log, made[0])["path"] == "/healthz"
