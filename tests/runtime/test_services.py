"""What ``fusion up`` hands its children: the same home and servers, and outside production
the API's own address as the public URL (the local sandboxes reach it)."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.config import Settings
from fusion.runtime import extras
from fusion.runtime.services import child_env, hub_services
from fusion.runtime.supervisor import Supervisor


def _settings(tmp_path: Path, **over: object) -> Settings:
    base = Settings(home=tmp_path, api_host="127.0.0.1", api_port=8123)
    return dataclasses.replace(base, **over)


def test_outside_production_the_public_url_defaults_to_the_api(tmp_path: Path) -> None:
    assert child_env(_settings(tmp_path))["FUSION_PUBLIC_URL"] == "http://127.0.0.1:8123"


def test_a_given_public_url_is_passed_on_and_production_gets_no_default(tmp_path: Path) -> None:
    given = _settings(tmp_path, env="production", public_url="https://hub.example.com")
    assert child_env(given)["FUSION_PUBLIC_URL"] == "https://hub.example.com"
    assert "FUSION_PUBLIC_URL" not in child_env(_settings(tmp_path, env="production"))


SECRETS = {
    "FUSION_JWT_SECRET": "j" * 40,
    "FUSION_ENCRYPTION_KEYS": "n1ZzI8bJ2p5Pk6b7Q0pVfWmH6a3xT2yK9sD4cE5fG1A=",
    "FUSION_DATABASE_URL": "postgresql://owner:pw@db/fusion",
    "FUSION_APP_DATABASE_URL": "postgresql://fusion_app:pw@db/fusion",
    "FUSION_DB_APP_PASSWORD": "pw",
}
LOADED = (
    "import sys, {module} as m; "
    "print(m.app.conf.broker_url if hasattr(m, 'app') else m.broker_url); "
    "print(sorted(n for n in sys.modules if n.startswith(('fusion.auth', 'fusion.security'))))"
)


@pytest.mark.parametrize("module", ["workers.flower", "celeryconfig"])
def test_the_module_flower_loads_reads_broker_settings_only(tmp_path: Path, module: str) -> None:
    # Given a production environment with the broker's URL and no secret at all
    env = {
        "PATH": os.environ.get("PATH", ""),
        "FUSION_ENV": "production",
        "FUSION_HOME": str(tmp_path),
        "FUSION_REDIS_URL": "redis://:pw@cache:6379/0",
    }
    # When Flower's module is imported (as `celery -A workers.flower flower` does)
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(module=module)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it starts (full settings would refuse: no JWT secret or keys) on the broker alone,
    # without loading credentials code or making dev secrets
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["redis://:pw@cache:6379/0", "[]"]
    assert not (tmp_path / "secrets").exists()


def test_fusion_up_starts_flower_without_secrets_in_its_environment(tmp_path: Path) -> None:
    # Given the supervisor's environment holds every secret
    [flower] = [
        s for s in hub_services(_settings(tmp_path), note=lambda _: None) if s.name == "flower"
    ]
    assert "workers.flower" in flower.argv
    show = f"import os; print(sorted(k for k in os.environ if k in {sorted(SECRETS)!r}))"
    probe = dataclasses.replace(flower, argv=(sys.executable, "-c", show))
    out = io.StringIO()
    # When the Flower service starts (here: a probe with Flower's withheld variables)
    Supervisor([probe], env={**os.environ, **SECRETS}, grace_s=1, out=out, restart=False).run()
    # Then none of them reached it
    assert any(line.endswith("[]") for line in out.getvalue().splitlines()), out.getvalue()


def test_fusion_up_runs_the_sandboxes_when_their_extra_is_installed(tmp_path: Path) -> None:
    names = [s.name for s in hub_services(_settings(tmp_path), note=lambda _: None)]
    assert names[-1] == "sandbox"


def test_without_the_sandbox_extra_fusion_up_skips_them_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(extras.EXTRAS, "sandbox", ("no_such_module_for_this_test",))
    notes: list[str] = []
    names = [s.name for s in hub_services(_settings(tmp_path), note=notes.append)]
    assert "sandbox" not in names
    assert notes == [
        "sandboxes skipped: no sandbox extra (pip install 'fusion-stage-hub[sandbox]')"
    ]
