"""The real API app in-process over the session's Postgres and Redis, for the API tests and
the user CLI's tests (which log in through it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api.app import create_app
from fusion.config import Settings
from fusion.jobs import dispatch

PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "scraper-token-for-the-tests"


@pytest.fixture(scope="session")
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        request_quota_per_minute=100_000,
        max_body_bytes=64 * 1024,
        metrics_token=METRICS_TOKEN,
    )


@contextmanager
def running_app(settings: Settings) -> Iterator[Flask]:
    """The API app over ``settings``, for the block. create_app installs the Celery
    publisher process-wide: what was there is put back after, and the app's connections
    closed, so the rest of the suite runs as if the block had not."""
    previous = dispatch.installed()
    app = create_app(settings)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        dispatch.install(previous)
        app.extensions["fusion"].database.dispose()


@pytest.fixture(scope="module")
def app(api_settings: Settings) -> Iterator[Flask]:
    with running_app(api_settings) as app:
        yield app


@pytest.fixture
def client(app: Flask, admin_engine: Engine) -> FlaskClient:
    return app.test_client()
