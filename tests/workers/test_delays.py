"""Short delays with real workers: a job due in a moment starts when it is due, not at the next
dispatcher sweep (its message is published at once with the due time as its ETA), runs once,
and a delayed message that is lost is still run by the sweep.

No beat runs in the first two tests, so no sweep can be what started the job."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from fusion.db.session import Database
from fusion.jobs import dispatch, service
from fusion.jobs.lanes import Lane
from fusion.jobs.models import JobStatus
from tests.api.conftest import Team, make_team
from tests.jobs.conftest import executions_of
from tests.workers.conftest import Celery, wait_until

pytestmark = pytest.mark.usefixtures("executions")


def _job(team: Team, job_id: str) -> dict[str, Any]:
    answer = team.viewer.get(f"/orgs/{team.org_id}/jobs/{job_id}")
    assert answer.status_code == 200, answer.json
    return answer.json  # type: ignore[no-any-return]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_job_due_in_two_seconds_starts_when_due_without_a_sweep(
    celery: Celery, client: FlaskClient, admin_engine: Engine
) -> None:
    # Given a worker, and no beat: nothing sweeps for due jobs
    celery.worker("w1")
    team = make_team(client, "Soon")
    # When a job due in two seconds is enqueued through the jobs API
    due = datetime.now(UTC) + timedelta(seconds=2)
    answer = team.operator.post(
        f"/orgs/{team.org_id}/jobs",
        json={"job_type": "test.record", "scheduled_at": due.isoformat()},
    )
    assert answer.status_code == 202, answer.json
    job_id = answer.json["id"]
    # Then it is not started before it is due, and it does start, once
    wait_until(lambda: _job(team, job_id)["status"] == "completed", 30)
    job = _job(team, job_id)
    assert _at(job["started_at"]) >= _at(job["scheduled_at"])
    assert executions_of(admin_engine, uuid.UUID(job_id)) == 1


def test_a_job_rate_limited_for_a_second_runs_again_without_a_sweep(
    celery: Celery, client: FlaskClient
) -> None:
    # Given a worker, no beat, and a job that the platform answers "not now, retry in 1 s"
    celery.worker("w1")
    team = make_team(client, "Throttled")
    answer = team.operator.post(
        f"/orgs/{team.org_id}/jobs",
        json={"job_type": "test.fail", "payload": {"error": "rate_limited", "retry_after_s": 1}},
    )
    assert answer.status_code == 202, answer.json
    job_id = answer.json["id"]

    # When it has been rescheduled, Then it is run again a second later by its own message
    def runs() -> list[dict[str, Any]]:
        logs = _job(team, job_id)["logs"]
        return [line for line in logs if line["message"].startswith("running:")]

    wait_until(lambda: len(runs()) >= 3, 30)
    job = _job(team, job_id)
    told = [
        _at(line["message"].split("rescheduled for ")[1].split(" ")[0])
        for line in job["logs"]
        if line["message"].startswith("rate limited")
    ]
    first, second = runs()[1:3]
    # each later run started no earlier than the time it was rescheduled for
    assert _at(first["created_at"]) >= told[0]
    assert _at(second["created_at"]) >= told[1]


class Dropping:
    """The publish port losing every delayed message (a broker that dropped them), passing
    the rest to the real dispatcher."""

    def __init__(self, inner: dispatch.Dispatcher) -> None:
        self.inner = inner
        self.dropped: list[uuid.UUID] = []

    def publish(
        self,
        jobs: Sequence[tuple[uuid.UUID, str]],
        lane: Lane = Lane.NORMAL,
        labels: dispatch.Labels | None = None,
        *,
        eta: datetime | None = None,
    ) -> None:
        if eta is not None:
            self.dropped.extend(job_id for job_id, _ in jobs)
            return
        self.inner.publish(jobs, lane, labels)


@pytest.fixture
def dropping(publisher: dispatch.Dispatcher) -> Iterator[Dropping]:
    port = Dropping(publisher)
    dispatch.install(port)
    try:
        yield port
    finally:
        dispatch.install(publisher)


def test_a_lost_delayed_message_is_run_by_the_sweep_once(
    celery: Celery,
    dropping: Dropping,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    # Given a worker and beat sweeping every second (a message counts as lost 2 s after due)
    celery.worker("w1")
    celery.beat()
    # When a job due in a second is enqueued and its delayed message is lost
    with database.org_session(org_a) as session:
        job = service.enqueue(
            session,
            org_id=org_a,
            job_type="test.record",
            scheduled_at=datetime.now(UTC) + timedelta(seconds=1),
        )
    assert dropping.dropped == [job.id]
    # Then the sweep publishes it once its message is overdue, and it runs once
    wait_until(lambda: _status(database, org_a, job.id) is JobStatus.COMPLETED, 30)
    time.sleep(1)
    assert executions_of(admin_engine, job.id) == 1


def _status(database: Database, org: uuid.UUID, job_id: uuid.UUID) -> JobStatus:
    with database.org_session(org) as session:
        return service.get_job(session, job_id).status
