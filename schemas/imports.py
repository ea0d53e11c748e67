"""Spreadsheet imports as the API shows them."""

from __future__ import annotations

from marshmallow import fields

from fusion.onboarding.imports import PROBLEMS_SHOWN
from fusion.onboarding.models import ImportStatus
from schemas.common import StrictSchema, Text, Timestamps


class ImportProblemSchema(StrictSchema):
    line = fields.Integer(required=True, metadata={"description": "Line of the file (header: 1)."})
    column = Text(required=True, metadata={"description": "The column, or * for the row."})
    reason = Text(required=True)


class ImportSchema(Timestamps):
    filename = Text(required=True)
    status = fields.Enum(ImportStatus, by_value=True, required=True)
    rows = fields.Integer(required=True)
    bad_rows = fields.Integer(required=True)
    good_rows = fields.Method("_good", required=True, metadata={"type": "integer"})
    problems = fields.List(
        fields.Nested(ImportProblemSchema),
        required=True,
        metadata={"description": f"The first {PROBLEMS_SHOWN} problems, by line."},
    )
    job_id = fields.UUID(allow_none=True, required=True)

    def _good(self, upload: object) -> int:
        return int(getattr(upload, "rows", 0)) - int(getattr(upload, "bad_rows", 0))


class ImportConfirmSchema(StrictSchema):
    good_rows_only = fields.Boolean(
        load_default=False,
        metadata={"description": "Apply the good rows of a file that has bad rows."},
    )
