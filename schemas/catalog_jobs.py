"""Payload schema of the ``delete_catalog_item`` job (``fusion/catalog/jobs.py``): which
product or variant an approved delete removes."""

from __future__ import annotations

from marshmallow import fields, validate

from fusion.catalog.service import DELETABLE, DELETE_JOB
from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema


class DeleteCatalogItemPayloadSchema(StrictSchema):
    resource_type = fields.String(required=True, validate=validate.OneOf(sorted(DELETABLE)))
    resource_id = fields.UUID(required=True)


register_payload_schema(DELETE_JOB, DeleteCatalogItemPayloadSchema)
