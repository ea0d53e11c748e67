"""The item-level results of a bulk job as the API shows them."""

from __future__ import annotations

from marshmallow import fields

from fusion.jobs.models import ItemStatus
from schemas.common import PageQuerySchema, Text, Timestamps, page_of


class JobItemSchema(Timestamps):
    job_id = fields.UUID(required=True)
    key = Text(
        required=True,
        metadata={"description": "The item: a SKU, or an imported row as ``line <n>``."},
    )
    status = fields.Enum(ItemStatus, by_value=True, required=True)
    reason = Text(
        required=True,
        metadata={"description": "Why it failed or was skipped: the platform's own words."},
    )
    data = fields.Dict(required=True)


JobItemPageSchema = page_of(JobItemSchema, "JobItemPageSchema")


class JobItemQuerySchema(PageQuerySchema):
    status = fields.Enum(ItemStatus, by_value=True, load_default=None)
