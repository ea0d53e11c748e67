"""A credential in the query string is refused before anything logs it: the API under the
real gunicorn (as ``fusion up`` and the image run it), its access log read back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.servers import free_port

SECRET = "fsh_abcdef12_" + "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t00"


@pytest.fixture
def gunicorn_api(hub_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log, errors = tmp_path / "access.log", tmp_path / "error.log"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "api.wsgi:app",
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2",
            "--no-control-socket", "--access-logfile", str(log),
        ],
        env={**os.environ, **hub_env},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=errors.open("wb"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 (local)
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        proc.stderr.read().decode() if proc.stderr else ""
                    ) from None
                time.sleep(0.2)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(20)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (our own http)
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_key_in_the_query_string_is_refused_and_never_reaches_the_access_log(
    gunicorn_api: tuple[str, Path],
) -> None:
    base, log = gunicorn_api
    org = uuid.uuid4()
    # When a key arrives in the query string, under any spelling, on any path
    urls = [
        f"{base}/orgs/{org}/products?api_key={SECRET}",
        f"{base}/orgs/{org}/products?limit=5&API_KEY={SECRET}",
        f"{base}/me?api%5Fkey={SECRET}",
        f"{base}/auth/login?access_token={SECRET}",
    ]
    statuses = [_status(url) for url in urls]
    # Then each is the generic 401
    assert statuses == [401] * len(urls)
    # And the access log has a line for each request, none with the key
    deadline = time.monotonic() + 10
    while log.read_text().count("?[redacted]") < len(urls) and time.monotonic() < deadline:
        time.sleep(0.1)
    written = log.read_text()
    assert written.count("?[redacted]") == len(urls), written
    assert SECRET not in written and "S3cr3t" not in written


def test_an_ordinary_query_string_is_served_and_logged_as_it_is(
    gunicorn_api: tuple[str, Path],
) -> None:
    base, log = gunicorn_api
    assert _status(f"{base}/healthz?probe=1") == 200
    deadline = time.monotonic() + 10
    while "/healthz?probe=1" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "/healthz?probe=1" in log.read_text()


def test_the_test_client_gets_the_same_401_as_any_bad_credential(client: FlaskClient) -> None:
    refused = client.get(f"/me?api_key={SECRET}")
    missing = client.get("/me")
    assert refused.status_code == missing.status_code == 401
    assert refused.get_data() == missing.get_data()
