"""``fusion sandbox`` starts the emulators, prints their URLs, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests


def test_fusion_sandbox_serves_until_terminated():
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("fusion")), "sandbox", "--platform", "etsy"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("etsy sandbox: http://127.0.0.1:")
        url = line.split(": ", 1)[1]
        state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
        assert state["platform"] == "etsy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_command_names_every_sandbox_without_importing_them():
    from fusion.cli.sandbox import PLATFORMS
    from fusion.sandbox import SANDBOXES

    assert tuple(sorted(SANDBOXES)) == PLATFORMS


def test_without_the_sandbox_extra_the_command_says_how_to_install_it(monkeypatch):
    from click.testing import CliRunner

    from fusion.cli.main import cli
    from fusion.runtime import extras

    monkeypatch.setitem(extras.EXTRAS, "sandbox", ("moto", "no_such_module_for_this_test"))
    result = CliRunner().invoke(cli, ["sandbox", "--platform", "etsy"])
    assert result.exit_code == 1
    assert "fusion sandbox needs the sandbox extra: pip install 'fusion-stage-hub[sandbox]'" in (
        result.output
    )
    assert "(not installed: no_such_module_for_this_test)" in result.output
