"""Children of ``fusion up`` (the API's and the streams' gunicorn) started exactly as it starts
them, from ``fusion.runtime.services.hub_services``, for tests that must see the processes a
person runs (tests/runtime/test_serving.py, the console's browser tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from fusion.config import Settings
from fusion.runtime.services import child_env, hub_services
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60


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


@contextmanager
def served(
    hub_env: Mapping[str, str],
    logs: Path,
    names: Iterable[str] = ("api", "streams"),
    **variables: str,
) -> Iterator[dict[str, str]]:
    """The named children of ``fusion up`` on free loopback ports, with ``hub_env`` and
    ``variables`` in their environment (and what ``fusion up`` adds: ``child_env``); their
    base URLs by name ("api", "streams"). Stopped as ``fusion up`` stops them."""
    env = {
        **os.environ,
        **hub_env,
        "FUSION_API_PORT": str(free_port()),
        "FUSION_STREAMS_PORT": str(free_port()),
        "PYTHONPATH": str(REPO),
        **variables,
    }
    resolved = Settings.from_env(env)
    env.update(child_env(resolved))
    services = {s.name: s for s in hub_services(resolved, note=lambda _: None)}
    urls = {
        "api": f"http://127.0.0.1:{resolved.api_port}",
        "streams": f"http://127.0.0.1:{resolved.streams_port}",
    }
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name in names:
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
        yield {name: urls[name] for name in procs}
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
