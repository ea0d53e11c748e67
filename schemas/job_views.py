"""Jobs as the API shows them (payload validation per job type lives in schemas.jobs)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from fusion.jobs.models import JobStatus, LogLevel
from schemas.common import Moment, PageQuerySchema, StrictSchema, Text, Timestamps, page_of

BULK_CAP = 500  # fusion.jobs.actions.BULK_CAP


class ProgressSchema(Schema):
    done = fields.Integer(required=True)
    total = fields.Integer(required=True)


class JobSchema(Timestamps):
    store_id = fields.UUID(allow_none=True, required=True)
    job_type = Text(required=True)
    queue = Text(required=True)
    status = fields.Enum(JobStatus, by_value=True, required=True)
    priority = fields.Integer(required=True)
    payload = fields.Dict(required=True)
    result = fields.Dict(allow_none=True, required=True)
    progress = fields.Nested(
        ProgressSchema,
        allow_none=True,
        required=True,
        metadata={
            "description": "How far a long job got (`done` of `total` units), as it last "
            "reported (about once a second while it runs); null for a job that reports none."
        },
    )
    last_error = Text(allow_none=True, required=True)
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    scheduled_at = fields.AwareDateTime(required=True)
    started_at = fields.AwareDateTime(allow_none=True, required=True)
    finished_at = fields.AwareDateTime(allow_none=True, required=True)
    cancel_requested = fields.Boolean(required=True)
    idempotency_key = Text(allow_none=True, required=True)
    parent_job_id = fields.UUID(allow_none=True, required=True)
    created_by = fields.UUID(allow_none=True, required=True)


class JobLogSchema(Schema):
    id = fields.UUID(required=True)
    level = fields.Enum(LogLevel, by_value=True, required=True)
    message = Text(required=True)
    data = fields.Dict(required=True)
    created_at = fields.AwareDateTime(required=True)


class JobDetailSchema(JobSchema):
    logs = fields.List(fields.Nested(JobLogSchema), required=True)


JobPageSchema = page_of(JobSchema, "JobPageSchema")


class JobQuerySchema(PageQuerySchema):
    status = fields.Enum(JobStatus, by_value=True, load_default=None)
    job_type = Text(load_default=None, validate=validate.Length(max=80))
    store_id = fields.UUID(load_default=None)
    since = Moment(load_default=None, metadata={"description": "Created at or after."})
    error = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Text anywhere in the last error (case-insensitive)."},
    )


class JobFilterSchema(StrictSchema):
    """Which jobs a bulk action takes (every field optional; the action adds the states it
    applies to)."""

    status = fields.Enum(JobStatus, by_value=True, load_default=None)
    job_type = Text(load_default=None, validate=validate.Length(max=80))
    store_id = fields.UUID(load_default=None)
    since = Moment(load_default=None, metadata={"description": "Created at or after."})
    error = Text(load_default=None, validate=validate.Length(min=1, max=200))
    error_line = Text(
        load_default=None,
        validate=validate.Length(max=2000),
        metadata={"description": "The exact first line of the last error (a failure group)."},
    )


class BulkJobsSchema(StrictSchema):
    job_ids = fields.List(
        fields.UUID(),
        validate=validate.Length(min=1, max=BULK_CAP),
        metadata={"description": f"Up to {BULK_CAP} jobs, by id."},
    )
    filter = fields.Nested(
        JobFilterSchema,
        metadata={"description": f"Or every job matching, newest first, up to {BULK_CAP}."},
    )

    @validates_schema
    def _one_of(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("job_ids" in data) == ("filter" in data):
            raise ValidationError("give either job_ids or filter, not both", "job_ids")


class SkippedJobSchema(Schema):
    job_id = fields.UUID(required=True)
    reason = Text(required=True)


class BulkResultSchema(Schema):
    action = Text(required=True)
    changed = fields.List(fields.UUID(), required=True)
    count = fields.Integer(required=True)
    skipped = fields.List(fields.Nested(SkippedJobSchema), required=True)
    capped = fields.Boolean(
        required=True,
        metadata={"description": "More jobs matched than the cap: call again for the rest."},
    )
    cap = fields.Integer(required=True)


class FailureGroupQuerySchema(StrictSchema):
    since = Moment(
        load_default=None, metadata={"description": "Failed at or after (default: 24 h ago)."}
    )


class FailureGroupSchema(Schema):
    store_id = fields.UUID(allow_none=True, required=True)
    job_type = Text(required=True)
    error_line = Text(required=True, metadata={"description": "First line of the error."})
    count = fields.Integer(required=True)
    first_failed_at = fields.AwareDateTime(allow_none=True, required=True)
    last_failed_at = fields.AwareDateTime(allow_none=True, required=True)
    sample_job_id = fields.UUID(required=True)
    retry = fields.Dict(
        required=True,
        metadata={"description": "The body of POST .../jobs/bulk-retry that retries the group."},
    )


class FailureGroupsSchema(Schema):
    since = fields.AwareDateTime(required=True)
    groups = fields.List(fields.Nested(FailureGroupSchema), required=True)


class JobCreateSchema(StrictSchema):
    job_type = Text(required=True, validate=validate.Length(min=1, max=80))
    store_id = fields.UUID(load_default=None)
    payload = fields.Dict(keys=Text(), load_default=dict)
    priority = fields.Integer(load_default=None, validate=validate.Range(min=-100, max=100))
    scheduled_at = Moment(load_default=None)


class IdempotencyHeaderSchema(Schema):
    # Header names are case-insensitive; webargs looks them up as written here.
    idempotency_key = Text(
        data_key="Idempotency-Key",
        load_default=None,
        validate=validate.Length(min=1, max=255),
        metadata={"description": "Reusing a key returns the first job instead of a new one."},
    )
