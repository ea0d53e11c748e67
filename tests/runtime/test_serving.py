"""The API and the event streams as ``fusion up`` runs them: the real gunicorn processes, with
the command lines of ``hub_services``. The API's streams hold none of its request threads (the
console's, served on the API's own origin, a few per process), and gunicorn's own errors are
problem+json like every other error."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from api.events import API_PROCESS_STREAMS
from fusion.config import Settings
from fusion.runtime.services import API_THREADS, API_WORKERS
from tests.support.api import PASSWORD
from tests.support.serving import served as started

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def served(
    settings: Settings, hub_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``api`` and ``streams`` started exactly as ``fusion up`` starts them; their base URLs."""
    # One person opens more streams than the API has threads (the default cap is 3).
    with started(
        hub_env, tmp_path_factory.mktemp("serving"), FUSION_STREAMS_PER_PRINCIPAL="50"
    ) as urls:
        yield urls


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


def _console_session(api: str) -> tuple[requests.Session, str]:
    """An org owner signed in to the console on the API's port (a browser's cookie jar)."""
    email = f"console-{time.monotonic_ns()}@example.test"
    signed = requests.post(
        f"{api}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=30
    )
    auth = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    org = requests.post(f"{api}/orgs", json={"name": "Live"}, headers=auth, timeout=30)
    browser = requests.Session()
    form = browser.get(f"{api}/console/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, form
    login = {"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    signed_in = browser.post(f"{api}/console/login", data=login, timeout=30)
    assert signed_in.status_code == 200 and "/console/orgs/" in signed_in.url, signed_in.text
    return browser, org.json()["id"]


def test_the_api_serves_the_consoles_stream_on_its_own_origin_a_few_at_once(
    served: dict[str, str],
) -> None:
    browser, org = _console_session(served["api"])
    url = f"{served['api']}/console/orgs/{org}/events"
    streams: list[Any] = []
    try:
        # Given more console streams asked of the API's port than its processes hold
        for _ in range(API_WORKERS * API_PROCESS_STREAMS + 2):
            stream = browser.get(url, stream=True, timeout=30)
            streams.append(stream)
            assert stream.status_code in (200, 429), stream.text
        served_here = [s for s in streams if s.status_code == 200]
        # Then the page's origin serves them live, each process at most its few
        assert 1 <= len(served_here) <= API_WORKERS * API_PROCESS_STREAMS
        for stream in served_here:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert next(stream.iter_lines()) == b"retry: 2000"
        assert all(int(s.headers["Retry-After"]) > 0 for s in streams if s.status_code == 429)
        # And the API's request threads still answer pages
        page = browser.get(f"{served['api']}/console/orgs/{org}/jobs", timeout=30)
        assert page.status_code == 200
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
