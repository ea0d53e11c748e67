"""Payload schemas of the onboarding jobs (``fusion/onboarding/jobs.py``)."""

from __future__ import annotations

from marshmallow import fields, validate

from fusion.onboarding.adoption import APPLY_ADOPTION_JOB, READ_LISTINGS_JOB
from fusion.onboarding.imports import APPLY_IMPORT_JOB
from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class ApplyImportPayloadSchema(StrictSchema):
    import_id = fields.UUID(required=True)
    lines = fields.List(
        fields.Integer(validate=validate.Range(min=2)),
        validate=validate.Length(min=1, max=10_000),
        metadata={"description": "Only these lines of the file (a retry of failed rows)."},
    )


register_payload_schema(APPLY_IMPORT_JOB, ApplyImportPayloadSchema)


class ReadStoreListingsPayloadSchema(StrictSchema):
    adoption_id = fields.UUID(required=True)


class ApplyAdoptionPayloadSchema(StrictSchema):
    adoption_id = fields.UUID(required=True)
    create_unmatched = fields.Boolean(load_default=False)
    external_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=255)),
        validate=validate.Length(min=1, max=10_000),
        metadata={"description": "Only these listings (a retry of failed ones)."},
    )


register_payload_schema(READ_LISTINGS_JOB, ReadStoreListingsPayloadSchema)
register_payload_schema(APPLY_ADOPTION_JOB, ApplyAdoptionPayloadSchema)
