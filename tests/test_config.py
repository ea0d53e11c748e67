"""Settings: malformed values stop start-up with a message naming the variable."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion.config import VARIABLES, BrokerSettings, Settings
from fusion.errors import ConfigError


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FUSION_API_PORT": "eighty"}, "FUSION_API_PORT: expected an integer, got 'eighty'"),
        ({"FUSION_API_PORT": "70000"}, "FUSION_API_PORT: must be between 1 and 65535, got 70000"),
        ({"FUSION_DATABASE_URL": "mysql://x@h/db"}, "FUSION_DATABASE_URL: expected a URL with"),
        ({"FUSION_REDIS_URL": "http://h:1"}, "FUSION_REDIS_URL: expected a URL with scheme"),
        ({"FUSION_ENV": "staging"}, "FUSION_ENV: expected one of dev, test, production"),
        ({"FUSION_ENCRYPTION_KEYS": "short"}, "FUSION_ENCRYPTION_KEYS: key #1 is not a Fernet"),
        ({"FUSION_RETRY_LADDER": "60,five"}, "FUSION_RETRY_LADDER: expected comma-separated"),
        ({"FUSION_ALLOW_PRIVATE_EGRESS": "maybe"}, "FUSION_ALLOW_PRIVATE_EGRESS: expected true or"),
        ({"FUSION_DB_PREPARED_STATEMENTS": "sometimes"}, "FUSION_DB_PREPARED_STATEMENTS: expected"),
        ({"FUSION_PUBLIC_URL": "hub.example.com"}, "FUSION_PUBLIC_URL: expected a URL with"),
        ({"FUSION_PUBLIC_URL": "https://hub.example/x"}, "FUSION_PUBLIC_URL: expected scheme://"),
        ({"FUSION_REFRESH_REUSE_GRACE_S": "600"}, "FUSION_REFRESH_REUSE_GRACE_S: must be between"),
        ({"FUSION_JOB_RETENTION_DAYS": "-1"}, "FUSION_JOB_RETENTION_DAYS: must be between"),
        ({"FUSION_SWEEP_INTERVAL_S": "often"}, "FUSION_SWEEP_INTERVAL_S: expected a number"),
        ({"FUSION_DISPATCH_STALE_S": "2.5"}, "FUSION_DISPATCH_STALE_S: expected an integer"),
        ({"FUSION_ORDER_QUEUE_POLL_S": "-1"}, "FUSION_ORDER_QUEUE_POLL_S: must be between"),
    ],
)
def test_a_malformed_value_names_the_variable(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"FUSION_HOME": str(tmp_path), **env})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "missing", ["FUSION_REDIS_URL", "FUSION_JWT_SECRET", "FUSION_ENCRYPTION_KEYS"]
)
def test_production_refuses_to_start_without_a_required_value(tmp_path: Path, missing: str) -> None:
    env = {
        "FUSION_ENV": "production",
        "FUSION_HOME": str(tmp_path),
        "FUSION_DATABASE_URL": "postgresql://admin@db/fusion",
        "FUSION_REDIS_URL": "redis://cache:6379/0",
        "FUSION_JWT_SECRET": "s" * 40,
        "FUSION_ENCRYPTION_KEYS": "n1ZzI8bJ2p5Pk6b7Q0pVfWmH6a3xT2yK9sD4cE5fG1A=",
    }
    del env[missing]
    with pytest.raises(ConfigError, match=f"{missing}: required when FUSION_ENV=production"):
        Settings.from_env(env)
    assert not (tmp_path / "secrets").exists()


def test_dev_mode_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = Settings.from_env({"FUSION_HOME": str(tmp_path)})
    second = Settings.from_env({"FUSION_HOME": str(tmp_path)})
    assert first.jwt_secret and first.jwt_secret == second.jwt_secret
    assert first.encryption_keys == second.encryption_keys
    assert oct((tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o777) == "0o600"


def test_prepared_statements_are_on_unless_turned_off(tmp_path: Path) -> None:
    home = {"FUSION_HOME": str(tmp_path)}
    assert Settings.from_env(home).db_prepared_statements is True
    off = Settings.from_env({**home, "FUSION_DB_PREPARED_STATEMENTS": "false"})
    assert off.db_prepared_statements is False


def test_the_application_connects_as_the_non_owner_role(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"FUSION_HOME": str(tmp_path), "FUSION_DATABASE_URL": "postgresql://postgres@db:5433/hub"}
    )
    assert settings.app_database_url == "postgresql://fusion_app@db:5433/hub"


def test_the_public_url_is_an_origin_without_a_trailing_slash(tmp_path: Path) -> None:
    home = {"FUSION_HOME": str(tmp_path)}
    assert Settings.from_env(home).public_url is None
    settings = Settings.from_env({**home, "FUSION_PUBLIC_URL": "https://hub.example.com/"})
    assert settings.public_url == "https://hub.example.com"


class _Recording(dict[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("from_env must ask for its variables by name")


def _readme_variables() -> set[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `FUSION_")]
    return {name for row in rows for name in re.findall(r"`(FUSION_[A-Z_]+)`", row.split("|")[1])}


def test_the_readme_table_lists_exactly_the_variables_settings_reads(tmp_path: Path) -> None:
    # Given the variables from_env asks its environment for, in dev and in production mode
    dev = _Recording({"FUSION_HOME": str(tmp_path)})
    Settings.from_env(dev)
    production = _Recording({"FUSION_ENV": "production"})
    with pytest.raises(ConfigError):
        Settings.from_env(production)
    # Then they are the variables of the field mapping, one per field
    assert dev.asked | production.asked == set(VARIABLES.values())
    assert set(VARIABLES) == {f.name for f in dataclasses.fields(Settings)}
    # And the README's configuration table names every one of them, and no other
    assert _readme_variables() == set(VARIABLES.values())


def test_the_broker_and_sweep_knobs_and_job_modules_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "FUSION_HOME": str(tmp_path),
            "FUSION_SWEEP_INTERVAL_S": "0.3",
            "FUSION_DISPATCH_STALE_S": "3",
            "FUSION_WORKER_SOFT_SHUTDOWN_S": "0",
            "FUSION_ORDER_QUEUE_POLL_S": "0",
            "FUSION_JOB_MODULES": " tests.jobs.handlers, ,bench.engine ",
        }
    )
    assert (
        settings.sweep_interval_s,
        settings.dispatch_stale_s,
        settings.worker_soft_shutdown_s,
        settings.order_queue_poll_s,
        settings.job_modules,
    ) == (0.3, 3, 0, 0, ("tests.jobs.handlers", "bench.engine"))
    defaults = Settings.from_env({"FUSION_HOME": str(tmp_path)})
    assert (
        defaults.sweep_interval_s,
        defaults.dispatch_stale_s,
        defaults.worker_soft_shutdown_s,
        defaults.order_queue_poll_s,
        defaults.job_modules,
    ) == (2, 30, 10, 60, ())


def test_broker_settings_read_the_broker_variables_and_nothing_else(tmp_path: Path) -> None:
    # Given an environment holding secrets too
    env = _Recording(
        {
            "FUSION_HOME": str(tmp_path),
            "FUSION_REDIS_URL": "redis://cache:6379/0",
            "FUSION_SWEEP_INTERVAL_S": "0.3",
            "FUSION_JWT_SECRET": "s" * 40,
        }
    )
    # When the broker-only settings are read
    broker = BrokerSettings.from_env(env)
    # Then only broker variables were asked for, and no dev secret was made
    assert broker.redis_url == "redis://cache:6379/0" and broker.sweep_interval_s == 0.3
    broker_variables = {
        VARIABLES[f.name] for f in dataclasses.fields(BrokerSettings) if f.name in VARIABLES
    }
    assert env.asked == broker_variables
    assert not (tmp_path / "secrets").exists()
    with pytest.raises(ConfigError, match="FUSION_REDIS_URL: required"):
        BrokerSettings.from_env({"FUSION_ENV": "production"})


def test_the_image_store_settings_are_read_and_checked(tmp_path: Path) -> None:
    home = {"FUSION_HOME": str(tmp_path)}
    local = Settings.from_env(home)
    assert (local.media_backend, local.image_max_bytes) == ("local", 10 * 1024 * 1024)
    s3 = Settings.from_env(
        {
            **home,
            "FUSION_MEDIA_BACKEND": "S3",
            "FUSION_MEDIA_BUCKET": "images",
            "FUSION_MEDIA_ENDPOINT_URL": "http://127.0.0.1:9000",
            "FUSION_IMAGE_MAX_BYTES": "2048",
        }
    )
    assert (s3.media_backend, s3.media_bucket, s3.media_endpoint_url, s3.image_max_bytes) == (
        "s3",
        "images",
        "http://127.0.0.1:9000",
        2048,
    )
    for bad, named in (
        ({"FUSION_MEDIA_BACKEND": "s3"}, "FUSION_MEDIA_BUCKET"),
        ({"FUSION_MEDIA_BACKEND": "ftp"}, "FUSION_MEDIA_BACKEND"),
        ({"FUSION_MEDIA_URL_TTL_S": str(8 * 86400)}, "FUSION_MEDIA_URL_TTL_S"),
    ):
        with pytest.raises(ConfigError, match=named):
            Settings.from_env({**home, **bad})
