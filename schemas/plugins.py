"""Installed plugins and their capability matrix."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import Text


class SettingSpecSchema(Schema):
    name = Text(required=True)
    type = Text(
        required=True,
        metadata={"description": "string | integer | number | boolean | url | object"},
    )
    required = fields.Boolean(required=True)
    default = fields.Raw(allow_none=True, required=True)
    description = Text(required=True)
    secret = fields.Boolean(
        required=True,
        metadata={"description": "Given with the credentials, never stored in settings."},
    )
    minimum = fields.Float(allow_none=True, required=True)
    maximum = fields.Float(allow_none=True, required=True)
    choices = fields.List(Text(), required=True)


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
    settings = fields.List(fields.Nested(SettingSpecSchema), required=True)


class PluginListSchema(Schema):
    items = fields.List(fields.Nested(PluginSchema), required=True)
