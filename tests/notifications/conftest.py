"""The notification stack: the real API app in-process (publishing to the test broker), a
real Celery worker on the default queue and beat (running the periodic checks every second),
a real SMTP server and a real HTTP receiver, all on loopback. Retries back off from 1 s
(capped at 2 s), so a retry shows within a test."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fusion.config import Settings
from tests.notifications.receivers import HttpReceiver, SmtpReceiver
from tests.support.api import running_app
from tests.support.workers import FAST, ROOT
from tests.workers.conftest import Celery

PUBLIC_URL = "http://hub.example.test"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


def notify_env(smtp: SmtpReceiver) -> dict[str, str]:
    return {
        "FUSION_SMTP_HOST": "127.0.0.1",
        "FUSION_SMTP_PORT": str(smtp.port),
        "FUSION_SMTP_STARTTLS": "false",
        "FUSION_SMTP_FROM": "hub@example.test",
        "FUSION_NOTIFY_RETRY_BASE_S": "1",
        "FUSION_NOTIFY_RETRY_CAP_S": "2",
        "FUSION_PUBLIC_URL": PUBLIC_URL,
    }


@pytest.fixture(scope="module")
def hub_settings(settings: Settings, hub_env: dict[str, str], smtp: SmtpReceiver) -> Settings:
    return Settings.from_env({**hub_env, **notify_env(smtp)})


@pytest.fixture(scope="module")
def app(hub_settings: Settings) -> Iterator[Flask]:
    with running_app(dataclasses.replace(hub_settings, request_quota_per_minute=10**6)) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def worker(hub_env: dict[str, str], smtp: SmtpReceiver, app: Flask) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    env.update({**hub_env, **FAST, **notify_env(smtp), "PYTHONPATH": str(ROOT)})
    # Beat runs the periodic checks and approval expiry every second, not every 5 minutes.
    env["FUSION_CHECK_INTERVAL_S"] = "1"
    processes = Celery(env, Path(tempfile.mkdtemp(prefix="fusion-notify-")))
    try:
        processes.worker("notify", queues="default", concurrency=4)
        # The dispatcher sweep (beat's) publishes a retry once it is due.
        processes.beat()
        yield
    finally:
        processes.stop_all()
