"""Product images: one image, a product's images in order, a new order."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import StrictSchema, Timestamps


class ImageSchema(Timestamps):
    product_id = fields.UUID(required=True)
    position = fields.Integer(required=True, metadata={"description": "0 is the main image."})
    content_type = fields.String(required=True, metadata={"description": "From the bytes."})
    size_bytes = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    filename = fields.String(required=True)
    alt = fields.String(required=True)


class ImageListSchema(Schema):
    items = fields.List(fields.Nested(ImageSchema), required=True)


class ImageOrderSchema(StrictSchema):
    image_ids = fields.List(
        fields.UUID(),
        required=True,
        validate=validate.Length(max=100),
        metadata={"description": "Every image of the product, once, in the new order."},
    )
