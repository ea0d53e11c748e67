"""The sweeps' per-run chatter (every few seconds, on every worker and beat) is filtered from
the logs; their warnings and everything about other tasks pass. A real worker logging JSON
names the job in each line of its run."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from fusion.db.session import Database
from fusion.jobs import service
from tests.support.logs import json_lines
from tests.workers.conftest import Celery, wait_until
from workers.app import QuietSweeps
from workers.dispatcher import CeleryDispatcher


def _record(level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("celery", level, __file__, 1, message, args, None)


def test_sweep_chatter_is_dropped_and_everything_else_passes() -> None:
    quiet = QuietSweeps()
    assert not quiet.filter(_record(logging.INFO, "Task %s[%s] received", "fusion.sweep.reap", "1"))
    assert not quiet.filter(
        _record(
            logging.INFO,
            "Scheduler: Sending due task %s (%s)",
            "dispatch-due-jobs",
            "fusion.sweep.dispatch_due",
        )
    )
    assert quiet.filter(_record(logging.WARNING, "Task %s raised: boom", "fusion.sweep.reap"))
    assert quiet.filter(_record(logging.INFO, "Task %s[%s] received", "fusion.run_job", "2"))
    assert quiet.filter(_record(logging.INFO, "reaped: %s", {"pending": 1}))


@pytest.mark.usefixtures("executions")
def test_a_worker_with_json_logs_names_the_job_in_every_line_of_its_run(
    celery: Celery,
    publisher: CeleryDispatcher,
    database: Database,
    org_a: uuid.UUID,
) -> None:
    # Given a worker started with FUSION_LOG_FORMAT=json
    worker = celery.worker("json", FUSION_LOG_FORMAT="json")
    # When a job completes and another fails permanently
    with database.org_session(org_a) as session:
        done = service.enqueue(session, org_id=org_a, job_type="test.record", payload={})
        failed = service.enqueue(session, org_id=org_a, job_type="test.fail",
                                 payload={"error": "permanent"})  # fmt: skip
    wait_until(lambda: len(_job_lines(worker.output())) >= 2, 60)
    # Then each job's outcome is one JSON line naming the job, its type, org and attempt
    by_job = {line["job_id"]: line for line in _job_lines(worker.output())}
    assert by_job[str(done.id)]["job_type"] == "test.record"
    assert (by_job[str(done.id)]["level"], by_job[str(done.id)]["org_id"]) == ("info", str(org_a))
    assert by_job[str(failed.id)]["level"] == "warning"
    assert by_job[str(failed.id)]["attempt"] == "1"
    assert "title too long" in by_job[str(failed.id)]["message"]
    # And Celery's own lines are JSON too (the worker's "ready")
    assert any("ready" in line["message"] for line in json_lines(worker.output()))


def _job_lines(output: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("logger") == "fusion.jobs.engine"]
