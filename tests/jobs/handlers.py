"""Job types for the engine's tests, loaded by worker processes via FUSION_JOB_MODULES.

``test.record`` writes one row per execution into ``test_executions`` (a table the tests
create), after an optional sleep made of checkpoints, so a test can count executions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import text

import schemas.jobs
from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.jobs.context import JobContext
from fusion.jobs.registry import JobType, register

EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS test_executions (
    job_id uuid NOT NULL, attempt integer NOT NULL, worker text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT SELECT, INSERT ON test_executions TO fusion_app;
"""


def record(ctx: JobContext) -> Mapping[str, Any]:
    sleep_s = float(ctx.payload.get("sleep_s", 0))
    deadline = time.monotonic() + sleep_s
    while time.monotonic() < deadline:
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        if ctx.payload.get("checkpoints", True):
            ctx.checkpoint()
    with ctx.session() as session:
        session.execute(
            text("INSERT INTO test_executions (job_id, attempt, worker) VALUES (:j, :a, :w)"),
            {"j": ctx.job_id, "a": ctx.attempt, "w": ctx.worker_id},
        )
    return {"attempt": ctx.attempt}


def fail(ctx: JobContext) -> None:
    kind = ctx.payload.get("error", "retryable")
    ctx.log("about to fail", kind=kind)
    if kind == "permanent":
        raise PermanentError("the platform refused the listing: title too long")
    if kind == "rate_limited":
        raise RateLimited(float(ctx.payload.get("retry_after_s", 30)))
    if kind == "crash":
        raise ZeroDivisionError("division by zero")
    raise RetryableError(f"platform answered 503 on attempt {ctx.attempt}")


def noop(ctx: JobContext) -> None:
    return None


class PublishPayload(Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = fields.Integer(required=True, validate=validate.Range(min=0))


class RecordPayload(Schema):
    sleep_s = fields.Float(validate=validate.Range(min=0))
    checkpoints = fields.Boolean()


class FailPayload(Schema):
    error = fields.String(
        validate=validate.OneOf(["retryable", "permanent", "rate_limited", "crash"])
    )
    retry_after_s = fields.Float(validate=validate.Range(min=0))


class CountedPayload(Schema):
    n = fields.Integer()


TEST_TYPES = (
    (JobType("test.record", record, needs_store=False), RecordPayload),
    (JobType("test.fail", fail, needs_store=False, max_attempts=3), FailPayload),
    (JobType("test.noop", noop, needs_store=False), CountedPayload),
    (JobType("test.urgent", noop, needs_store=False, priority=10), CountedPayload),
    (JobType("test.schema", noop, needs_store=False), PublishPayload),
    (JobType("test.store", noop, needs_store=True), CountedPayload),
)
for _job_type, _schema in TEST_TYPES:
    register(_job_type)
    schemas.jobs.register_payload_schema(_job_type.name, _schema)
