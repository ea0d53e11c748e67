"""The API and the event streams as ``fusion up`` runs them: the real gunicorn processes, with
the command lines of ``hub_services``. Open streams hold none of the API's request threads,
and gunicorn's own errors are problem+json like every other error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fusion.config import Settings
from fusion.runtime.services import API_THREADS, API_WORKERS, child_env, hub_services
from tests.support.api import PASSWORD
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60
PROBLEM = "application/problem+json"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the process exited:\n{log.read_text()[-5000:]}"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} not ready after {READY_TIMEOUT_S}s:\n{log.read_text()[-5000:]}")


@pytest.fixture(scope="module")
def served(
    settings: Settings, hub_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``api`` and ``streams`` started exactly as ``fusion up`` starts them; their base URLs."""
    logs = tmp_path_factory.mktemp("serving")
    env = {
        **os.environ,
        **hub_env,
        "FUSION_API_PORT": str(free_port()),
        "FUSION_STREAMS_PORT": str(free_port()),
        # One person opens more streams than the API has threads (the default cap is 3).
        "FUSION_STREAMS_PER_PRINCIPAL": "50",
        "PYTHONPATH": str(REPO),
    }
    resolved = Settings.from_env(env)
    env.update(child_env(resolved))
    services = {s.name: s for s in hub_services(resolved, note=lambda _: None)}
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    urls = {
        "api": f"http://127.0.0.1:{resolved.api_port}",
        "streams": f"http://127.0.0.1:{resolved.streams_port}",
    }
    try:
        for name in ("api", "streams"):
            log = logs / f"{name}.log"
            with log.open("wb") as out:
                procs[name] = (
                    subprocess.Popen(
                        services[name].argv,
                        env={**env, **services[name].env, "PYTHONUNBUFFERED": "1"},
                        cwd=REPO,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    ),
                    log,
                )
        for name, (proc, log) in procs.items():
            _wait_ready(urls[name] + "/readyz", proc, log)
        yield urls
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _owner_of_an_org(api: str) -> tuple[dict[str, str], str]:
    email = f"streams-{time.monotonic_ns()}@example.test"
    signed = requests.post(
        f"{api}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert signed.status_code == 201, signed.text
    auth = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    org = requests.post(f"{api}/orgs", json={"name": "Streams"}, headers=auth, timeout=30)
    assert org.status_code == 201, org.text
    return auth, org.json()["id"]


def test_open_streams_leave_the_api_answering(served: dict[str, str]) -> None:
    auth, org = _owner_of_an_org(served["api"])
    # Given more open streams than the API has request threads, each one live
    count = API_WORKERS * API_THREADS + 4
    streams: list[Any] = []
    try:
        for _ in range(count):
            stream = requests.get(
                f"{served['streams']}/orgs/{org}/events", headers=auth, stream=True, timeout=30
            )
            streams.append(stream)
            assert stream.status_code == 200
            assert next(stream.iter_lines()) == b"retry: 2000"
        # When an ordinary request comes to the API
        answer = requests.get(f"{served['api']}/orgs/{org}", headers=auth, timeout=30)
        # Then it is answered, and so is the streams process's own probe
        assert answer.status_code == 200 and answer.json()["id"] == org
        assert requests.get(f"{served['streams']}/healthz", timeout=30).status_code == 200
        # And the API's port holds no stream: it says where streams are served
        misdirected = requests.get(f"{served['api']}/orgs/{org}/events", headers=auth, timeout=30)
        assert misdirected.status_code == 421
        assert misdirected.headers["Content-Type"] == PROBLEM
    finally:
        for stream in streams:
            stream.close()


def test_the_streams_process_answers_only_streams(served: dict[str, str]) -> None:
    auth, org = _owner_of_an_org(served["api"])
    answer = requests.get(f"{served['streams']}/orgs/{org}", headers=auth, timeout=30)
    assert answer.status_code == 404 and answer.headers["Content-Type"] == PROBLEM
    anonymous = requests.get(f"{served['streams']}/orgs/{org}/events", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == PROBLEM


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("process", ["api", "streams"])
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: hub\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: hub\r\nBad Header: x\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Big: y\r\n" * 200 + b"\r\n", 431),
    ],
)
def test_gunicorns_own_errors_are_problems(
    served: dict[str, str], process: str, request_bytes: bytes, status: int
) -> None:
    code, headers, body = _raw(served[process], request_bytes)
    assert code == status
    assert headers["Content-Type"] == PROBLEM
    problem = json.loads(body)
    assert problem["status"] == status and set(problem) == {"type", "title", "status", "detail"}
