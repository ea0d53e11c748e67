"""Fixtures of the engine's tests: the test job types, an executions table, an engine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest
from sqlalchemy import Engine, text

import boot
from fusion.jobs import dispatch
from fusion.jobs.dispatch import Labels
from fusion.jobs.lanes import Lane
from tests.jobs import handlers


class RecordingDispatcher:
    """A real in-process implementation of the publish port that keeps what it was given."""

    def __init__(self) -> None:
        self.published: list[tuple[uuid.UUID, str, Lane]] = []
        self.etas: dict[uuid.UUID, datetime | None] = {}  # the last message's, per job

    def publish(
        self,
        jobs: Sequence[tuple[uuid.UUID, str]],
        lane: Lane = Lane.NORMAL,
        labels: Labels | None = None,
        *,
        eta: datetime | None = None,
    ) -> None:
        self.published.extend((job_id, queue, lane) for job_id, queue in jobs)
        self.etas.update((job_id, eta) for job_id, _ in jobs)

    @property
    def ids(self) -> list[uuid.UUID]:
        return [job_id for job_id, _, _ in self.published]


@pytest.fixture(autouse=True)
def _validator() -> None:
    boot.load_jobs()


@pytest.fixture
def recorder() -> Iterator[RecordingDispatcher]:
    recording = RecordingDispatcher()
    dispatch.install(recording)
    try:
        yield recording
    finally:
        dispatch.install(None)


@pytest.fixture
def executions(admin_engine: Engine) -> Iterator[None]:
    with admin_engine.begin() as conn:
        conn.execute(text(handlers.EXECUTIONS_DDL))
        conn.execute(text("TRUNCATE test_executions"))
    yield
    with admin_engine.begin() as conn:
        # Dropped, not kept: the migration tests compare the schema with the models.
        conn.execute(text("DROP TABLE IF EXISTS test_executions"))


def executions_of(admin_engine: Engine, job_id: uuid.UUID) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM test_executions WHERE job_id = :j"), {"j": job_id}
            ).scalar_one()
        )
