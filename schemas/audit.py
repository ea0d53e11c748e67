"""The audit log, read only."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import PageQuerySchema, Text, page_of


class AuditEntrySchema(Schema):
    id = fields.UUID(required=True)
    seq = fields.Integer(required=True)
    actor_type = Text(required=True)
    actor_id = fields.UUID(allow_none=True, required=True)
    action = Text(required=True)
    resource_type = Text(required=True)
    resource_id = fields.UUID(allow_none=True, required=True)
    before = fields.Dict(allow_none=True, required=True)
    after = fields.Dict(allow_none=True, required=True)
    created_at = fields.AwareDateTime(required=True)
    entry_hash = Text(required=True)


AuditPageSchema = page_of(AuditEntrySchema, "AuditPageSchema")


class AuditQuerySchema(PageQuerySchema):
    action = Text(load_default=None, validate=validate.Length(max=80))
    resource_type = Text(load_default=None, validate=validate.Length(max=60))
    resource_id = fields.UUID(load_default=None)
