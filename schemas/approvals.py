"""Approvals, their decisions, and the policies that ask for them; and the 202 outcome."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.approvals.models import ApprovalStatus
from schemas.common import PageQuerySchema, StrictSchema, Text, Timestamps, page_of
from schemas.job_views import JobSchema


class ApprovalSchema(Timestamps):
    resource_type = Text(required=True)
    resource_id = fields.UUID(allow_none=True, required=True)
    action = Text(required=True)
    payload = fields.Dict(required=True)
    status = fields.Enum(ApprovalStatus, by_value=True, required=True)
    requested_by = fields.UUID(
        allow_none=True,
        required=True,
        metadata={"description": "The person who asked: in person, or through their API key."},
    )
    requested_by_key_id = fields.UUID(
        allow_none=True,
        required=True,
        metadata={"description": "The API key the request came through (null: in person)."},
    )
    content = fields.Dict(
        allow_none=True,
        required=True,
        metadata={
            "description": "What approving releases, as it was when asked for; the job does "
            "nothing (and asks again) if it has changed by the time it runs."
        },
    )
    content_digest = Text(allow_none=True, required=True)
    decided_by = fields.UUID(allow_none=True, required=True)
    decided_at = fields.AwareDateTime(allow_none=True, required=True)
    decision_note = Text(allow_none=True, required=True)
    expires_at = fields.AwareDateTime(required=True)
    job_id = fields.UUID(allow_none=True, required=True)


ApprovalPageSchema = page_of(ApprovalSchema, "ApprovalPageSchema")


class ApprovalQuerySchema(PageQuerySchema):
    status = fields.Enum(ApprovalStatus, by_value=True, load_default=None)
    resource_type = Text(load_default=None, validate=validate.Length(max=60))


class DecisionSchema(StrictSchema):
    decision = Text(required=True, validate=validate.OneOf(["approve", "reject"]))
    note = Text(load_default=None, validate=validate.Length(max=2000))


class PolicySchema(Timestamps):
    resource_type = Text(required=True)
    action = Text(required=True)
    requires_approval = fields.Boolean(required=True)
    auto_approve_threshold = fields.Dict(required=True)
    expires_after_s = fields.Integer(required=True)


PolicyPageSchema = page_of(PolicySchema, "PolicyPageSchema")


class ThresholdSchema(StrictSchema):
    """Below these the action goes straight through without approval."""

    max_price = fields.Float(allow_nan=False, validate=validate.Range(min=0, max=1e12))
    max_quantity = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1))


THRESHOLD = fields.Nested(ThresholdSchema)


class PolicyCreateSchema(StrictSchema):
    resource_type = Text(required=True, validate=validate.Length(min=1, max=60))
    action = Text(required=True, validate=validate.Length(min=1, max=60))
    requires_approval = fields.Boolean(load_default=True)
    auto_approve_threshold = THRESHOLD
    expires_after_s = fields.Integer(validate=validate.Range(min=60, max=30 * 86400))


class PolicyUpdateSchema(StrictSchema):
    requires_approval = fields.Boolean()
    auto_approve_threshold = THRESHOLD
    expires_after_s = fields.Integer(validate=validate.Range(min=60, max=30 * 86400))


class OutcomeSchema(Schema):
    """What an asynchronous action answers with (202): the job, or the approval it awaits."""

    kind = Text(required=True, validate=validate.OneOf(["job", "approval"]))
    job = fields.Nested(JobSchema, allow_none=True, required=True)
    approval = fields.Nested(ApprovalSchema, allow_none=True, required=True)
