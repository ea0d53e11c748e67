"""FUSION_MAX_ATTEMPTS is the max_attempts of a new job whose type names none; a type's own
max_attempts and an explicit one still win."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service
from tests.api.conftest import make_team
from tests.jobs.conftest import RecordingDispatcher
from tests.support.api import running_app


def _stored_max_attempts(admin_engine: Engine, job_id: uuid.UUID) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT max_attempts FROM jobs WHERE id = :id"), {"id": job_id}
            ).scalar_one()
        )


@pytest.fixture
def eight(hub_env: dict[str, str]) -> Settings:
    return Settings.from_env({**hub_env, "FUSION_MAX_ATTEMPTS": "8"})


def test_a_job_whose_type_names_no_max_attempts_gets_the_setting(
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    recorder: RecordingDispatcher,
    eight: Settings,
) -> None:
    # Given FUSION_MAX_ATTEMPTS=8
    assert eight.max_attempts == 8
    with database.org_session(org_a) as session:
        # When jobs are enqueued without a max_attempts of their own
        plain = service.enqueue(session, org_id=org_a, job_type="test.noop", settings=eight)
        # (test.fail's type says 3; an explicit 2 beats both)
        typed = service.enqueue(session, org_id=org_a, job_type="test.fail", settings=eight)
        given = service.enqueue(
            session, org_id=org_a, job_type="test.noop", max_attempts=2, settings=eight
        )
        [bulk] = service.enqueue_many(
            session, org_id=org_a, specs=[{"job_type": "test.noop"}], settings=eight
        )
    # Then the row of each says the setting, the type's own, or the given number
    assert _stored_max_attempts(admin_engine, plain.id) == 8
    assert _stored_max_attempts(admin_engine, bulk.id) == 8
    assert _stored_max_attempts(admin_engine, typed.id) == 3
    assert _stored_max_attempts(admin_engine, given.id) == 2


def test_without_settings_a_job_gets_the_built_in_default(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, recorder: RecordingDispatcher
) -> None:
    with database.org_session(org_a) as session:
        job = service.enqueue(session, org_id=org_a, job_type="test.noop")
    assert _stored_max_attempts(admin_engine, job.id) == Settings().max_attempts == 5


@pytest.fixture
def app_with_eight(eight: Settings) -> Iterator[Flask]:
    with running_app(eight) as app:
        yield app


def test_a_job_enqueued_through_the_api_gets_the_setting(
    app_with_eight: Flask, admin_engine: Engine
) -> None:
    # Given an API started with FUSION_MAX_ATTEMPTS=8
    team = make_team(app_with_eight.test_client(), "Eight")
    # When an operator enqueues a job whose type names no max_attempts
    response = team.operator.post(f"/orgs/{team.org_id}/jobs", json={"job_type": "test.noop"})
    # Then the job answered and the row both say 8
    assert response.status_code == 202, response.json
    assert response.json["max_attempts"] == 8
    assert _stored_max_attempts(admin_engine, uuid.UUID(response.json["id"])) == 8
