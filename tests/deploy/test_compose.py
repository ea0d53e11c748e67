"""docker-compose.yml as CI can check it without a container runtime.

1. The file is valid against the Compose Specification's JSON schema (vendored, see
   deploy/compose-spec/README.md), every long-running service has a healthcheck, and the
   monitoring profile's files parse and name only metrics the hub exports.
2. Every service built from the hub's image (migrate, api, the workers, beat, flower and the
   demo sandboxes) runs its command as the compose file writes it, with the compose
   environment (the ``postgres`` and ``redis`` hosts replaced by this test's servers, ports by
   free ones), in a working directory it cannot write, its volume or image directory as a
   writable temporary folder, and becomes healthy by its own healthcheck, parsed from the
   file; migrate exits 0.

What "cannot write" means here: the tests run as root, and the venv's interpreter lives under
/root, which no other user may read, so the commands cannot run as another uid. When running
as root they run as uid 0 *without any capability* (``setpriv --bounding-set=-all``): file
permissions then hold for them as for any user, so the 0555 working directory is unwritable
(the test checks that first). As another user, they run as that user. The third-party images
(Postgres, Redis, Prometheus, Grafana) are checked by the schema only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.servers import (
    ROLE_PASSWORD_LOCK,
    RedisServer,
    ScratchDatabase,
    admin_postgres_url,
    cluster_lock,
    free_ports,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "compose-spec" / "compose-spec.json"
# The schema's checksum as recorded in deploy/compose-spec/README.md.
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
HUB_IMAGE = "fusion-stage-hub:latest"
IMAGE_HOME = "/var/lib/fusion"  # the Dockerfile's FUSION_HOME, owned by the image's user
HEALTHY_TIMEOUT_S = 240

# What an operator puts in .env (docs/running.md), made up for the test.
COMPOSE_VARIABLES = {
    "POSTGRES_PASSWORD": "owner-pw-compose",
    "FUSION_DB_APP_PASSWORD": "app-pw-compose",
    "REDIS_PASSWORD": "redis-pw-compose",
    "FUSION_JWT_SECRET": "j" * 48,
    "FUSION_ENCRYPTION_KEYS": "n1ZzI8bJ2p5Pk6b7Q0pVfWmH6a3xT2yK9sD4cE5fG1A=",
    "FLOWER_BASIC_AUTH": "admin:flower-pw-compose",
    "GRAFANA_ADMIN_PASSWORD": "grafana-pw-compose",
    "FUSION_METRICS_TOKEN": "metrics-token-compose",
    # One gunicorn worker instead of four: the machine is small and shared.
    "FUSION_API_WORKERS": "1",
}
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = values.get(name)
        if value:
            return value
        if op and op.endswith("?"):
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(one, text)


def compose(values: Mapping[str, str] = COMPOSE_VARIABLES) -> dict[str, Any]:
    loaded = yaml.safe_load(interpolate(COMPOSE.read_text(), values))
    assert isinstance(loaded, dict)
    return loaded


def hub_services(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in doc["services"].items()
        if spec.get("image") == HUB_IMAGE or "build" in spec
    }


# -- 1. the file itself -------------------------------------------------------------------


def test_the_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (SCHEMA.parent / "README.md").read_text()


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    # The file as written (variables unexpanded, as the schema sees a checked-in file) ...
    raw = yaml.safe_load(COMPOSE.read_text())
    assert [e.message for e in validator.iter_errors(raw)] == []
    # ... and as compose would run it
    assert [e.message for e in validator.iter_errors(compose())] == []
    # and the schema is strict enough to catch a slip of the pen
    broken = compose()
    broken["services"]["beat"]["healthchek"] = broken["services"]["beat"].pop("healthcheck")
    assert any("healthchek" in e.message for e in validator.iter_errors(broken))


def test_every_long_running_service_has_a_healthcheck_and_beat_keeps_state_in_its_volume() -> None:
    doc = compose()
    for name, spec in doc["services"].items():
        if spec.get("restart") == "no":
            continue
        test = spec.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    workers = [n for n in doc["services"] if n.startswith("worker-")]
    assert len(workers) == 5
    for name in workers:
        platform = doc["services"][name]["command"][-1]
        assert doc["services"][name]["healthcheck"]["test"] == [
            "CMD", "fusion", "worker", "--platform", platform, "--ping",
        ]  # fmt: skip
    beat = doc["services"]["beat"]
    assert "beatdata:/var/lib/fusion" in beat["volumes"]
    assert beat["command"][-1].startswith("/var/lib/fusion/")
    assert set(doc["services"]["sandbox"]["profiles"]) == {"demo"}
    assert set(doc["services"]["prometheus"]["profiles"]) == {"monitoring"}
    assert set(doc["services"]["grafana"]["profiles"]) == {"monitoring"}


def _exported_metrics() -> set[str]:
    # The series are named in the collector and in the recording side (fusion/telemetry.py)
    source = "".join(
        (ROOT / "fusion" / name).read_text() for name in ("metrics.py", "telemetry.py")
    )
    names = set(re.findall(r'"(fusion_[a-z_]+)"', source))
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_created")
    return {n + s for n in names for s in suffixes} | {"up"}


def _metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    words = set(re.findall(r"\b(fusion_[a-z_]+|up)\b", without_labels))
    return words


def test_the_monitoring_profile_scrapes_with_the_token_file_and_alerts_on_hub_metrics() -> None:
    doc = compose()
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    # The token is read from the compose secret's file, never written in the config
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert doc["secrets"]["metrics_token"] == {"environment": "FUSION_METRICS_TOKEN"}
    assert "metrics_token" in doc["services"]["prometheus"]["secrets"]
    files = ["alerts.yml", "fusion-alerts.yml"]
    assert prometheus["rule_files"] == [f"/etc/prometheus/{name}" for name in files]
    exported = _exported_metrics()
    alerts = [
        rule
        for name in files
        for group in yaml.safe_load((ROOT / "deploy/prometheus" / name).read_text())["groups"]
        for rule in group["rules"]
    ]
    assert len({rule["alert"] for rule in alerts}) == len(alerts)  # each alert once
    assert len(alerts) >= 4
    for rule in alerts:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert _metric_names(rule["expr"]) <= exported, rule["alert"]
    # Grafana: the provisioned data source is the one every dashboard panel uses
    source = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/fusion.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/fusion-hub.json").read_text())
    targets = [t for p in dashboard["panels"] for t in p["targets"]]
    assert targets
    for target in targets:
        assert target["datasource"]["uid"] == source["uid"]
        assert _metric_names(target["expr"]) <= exported, target["expr"]
        assert _metric_names(target["expr"]), target["expr"]


# -- 2. the hub's services, run as compose writes them ------------------------------------


def _unprivileged_prefix(probe_dir: Path) -> list[str]:
    """How to run a command so it cannot write where permissions say it may not (see the
    module docstring); checked on ``probe_dir`` before it is relied on."""
    if os.geteuid() != 0:
        prefix: list[str] = []
    else:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop the right to write")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "open('probe', 'w')"],
        cwd=probe_dir, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe.stderr
    assert not (probe_dir / "probe").exists()
    return prefix


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    healthcheck: list[str]
    healthy_after_s: float | None = None
    checks: int = 0
    last_check: str = field(default="")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Stage:
    """The compose services of the hub's image, as processes of this machine."""

    def __init__(self, tmp: Path, database: ScratchDatabase, redis: RedisServer) -> None:
        self.tmp = tmp
        self.database = database
        self.redis = redis
        self.workdir = tmp / "app"  # stands for /app: the image's source, read-only to its user
        self.workdir.mkdir()
        self.workdir.chmod(0o555)
        self.prefix = _unprivileged_prefix(self.workdir)
        self.ports = {8000: free_ports(1), 5555: free_ports(1)}
        sandbox_base = free_ports(4)
        self.ports.update({9100: sandbox_base, 9104: sandbox_base + 4})
        self.running: list[Running] = []

    def localise(self, text: str, name: str) -> str:
        """One compose string as it would be inside the service's container, on this host."""
        owner = f"fusion:{COMPOSE_VARIABLES['POSTGRES_PASSWORD']}@postgres:5432/fusion"
        # The owner is the test server's superuser (a throwaway scratch database).
        text = text.replace(owner, f"postgres@127.0.0.1:5432/{self.database.name}")
        text = text.replace("@postgres:5432/fusion", f"@127.0.0.1:5432/{self.database.name}")
        text = text.replace("@redis:6379/", f"@127.0.0.1:{self.redis.port}/")
        text = text.replace(IMAGE_HOME, str(self.home(name)))
        # A container's own address, here loopback.
        text = text.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
        for port, here in self.ports.items():
            text = re.sub(rf"\b{port}\b", str(here), text)
        return text

    def home(self, name: str) -> Path:
        """The service's volume (beat's beatdata) or the image's own FUSION_HOME folder."""
        path = self.tmp / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def environment(self, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FUSION_", "FLOWER_"))}
        image = {  # the Dockerfile's ENV
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "FUSION_ENV": "production",
            "FUSION_HOME": IMAGE_HOME,
        }
        # A key without a value takes the host's variable in compose: none is set here.
        given = {k: str(v) for k, v in (spec.get("environment") or {}).items() if v is not None}
        env = {**image, **given}
        env = {k: self.localise(v, name) for k, v in env.items()}
        home = self.tmp / "user-home" / name
        home.mkdir(parents=True, exist_ok=True)
        return {
            **base,
            **env,
            "HOME": str(home),
            # The image has the source in /app; here it is this checkout.
            "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
        }

    def argv(self, name: str, words: list[str]) -> list[str]:
        return [*self.prefix, *(self.localise(str(w), name) for w in words)]

    def run_once(self, name: str, spec: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(name, spec["command"]),
            cwd=self.workdir,
            env=self.environment(name, spec),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self, name: str, spec: Mapping[str, Any]) -> Running:
        log = self.tmp / f"{name}.log"
        env = self.environment(name, spec)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.argv(name, spec["command"]),
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        test = spec["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: the test runs CMD healthchecks only"
        running = Running(name, proc, log, env, self.argv(name, test[1:]))
        self.running.append(running)
        return running

    def check(self, running: Running) -> bool:
        running.checks += 1
        result = subprocess.run(
            running.healthcheck, cwd=self.workdir, env=running.env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        running.last_check = (result.stdout + result.stderr)[-1500:]
        return result.returncode == 0

    def stop_all(self) -> None:
        for running in self.running:
            if running.proc.poll() is None:
                os.killpg(running.proc.pid, 15)
        for running in self.running:
            try:
                running.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(running.proc.pid, 9)
                running.proc.wait(5)


@pytest.fixture
def stage(tmp_path: Path, settings: object) -> Iterator[Stage]:
    # settings first: the run's database is migrated, so the cluster-wide roles exist. The
    # compose migration sets the application role's password: one test process at a time.
    database = ScratchDatabase(admin_postgres_url())
    database.create()
    redis = RedisServer(password=COMPOSE_VARIABLES["REDIS_PASSWORD"])
    redis.start()
    staged = Stage(tmp_path, database, redis)
    try:
        with cluster_lock(database.admin_url, ROLE_PASSWORD_LOCK):
            yield staged
    finally:
        staged.stop_all()
        redis.close()
        database.drop()
        staged.workdir.chmod(0o755)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_service_of_the_hub_image_runs_as_compose_writes_it_and_becomes_healthy(
    stage: Stage,
) -> None:
    services = hub_services(compose())
    assert {"migrate", "api", "beat", "flower", "sandbox"} <= set(services)
    assert len([n for n in services if n.startswith("worker-")]) == 5
    # Given the one-shot migration, as compose runs it first
    migrate = stage.run_once("migrate", services.pop("migrate"))
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    assert "database at head" in migrate.stdout
    # When every long-running service starts with its command and environment
    started = time.monotonic()
    running = [stage.start(name, spec) for name, spec in services.items()]
    # Then each one becomes healthy by its own healthcheck, and stays up
    pending = list(running)
    while pending:
        for service in list(pending):
            assert service.proc.poll() is None, (
                f"{service.name} exited with {service.proc.returncode}:\n{service.output()[-4000:]}"
            )
            if stage.check(service):
                service.healthy_after_s = time.monotonic() - started
                pending.remove(service)
        if pending and time.monotonic() - started > HEALTHY_TIMEOUT_S:
            report = "\n".join(
                f"--- {s.name}: {s.last_check}\n{s.output()[-2500:]}" for s in pending
            )
            pytest.fail(f"not healthy after {HEALTHY_TIMEOUT_S}s:\n{report}")
        time.sleep(1)
    # and nothing was written into the working directory; beat's state is in its volume
    assert list(stage.workdir.iterdir()) == []
    assert (stage.home("beat") / "celerybeat-schedule").exists() or any(
        p.name.startswith("celerybeat-schedule") for p in stage.home("beat").iterdir()
    )
    assert (stage.home("beat") / "beat-heartbeat.json").exists()
    for service in running:
        assert "Traceback" not in service.output(), f"{service.name}:\n{service.output()[-3000:]}"
    print(
        "healthy after: "
        + ", ".join(f"{s.name} {s.healthy_after_s:.0f}s ({s.checks} checks)" for s in running)
    )
