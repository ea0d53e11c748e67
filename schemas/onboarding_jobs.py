"""Payload schema of the ``apply_import`` job (``fusion/onboarding/jobs.py``)."""

from __future__ import annotations

from marshmallow import fields, validate

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
