"""Jobs as the API shows them (payload validation per job type lives in schemas.jobs)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.jobs.models import JobStatus, LogLevel
from schemas.common import Moment, PageQuerySchema, StrictSchema, Text, Timestamps, page_of


class JobSchema(Timestamps):
    store_id = fields.UUID(allow_none=True, required=True)
    job_type = Text(required=True)
    queue = Text(required=True)
    status = fields.Enum(JobStatus, by_value=True, required=True)
    priority = fields.Integer(required=True)
    payload = fields.Dict(required=True)
    result = fields.Dict(allow_none=True, required=True)
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
