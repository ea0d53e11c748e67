"""Installed plugins and their capability matrix."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import Text


class PluginSchema(Schema):
    slug = Text(required=True)
    name = Text(required=True)
    version = Text(required=True)
    auth_type = Text(required=True)
    capabilities = fields.Dict(
        keys=Text(),
        values=Text(),
        required=True,
        metadata={"description": "capability -> native | workaround | unsupported"},
    )
    rate_limit = fields.Dict(required=True)


class PluginListSchema(Schema):
    items = fields.List(fields.Nested(PluginSchema), required=True)
