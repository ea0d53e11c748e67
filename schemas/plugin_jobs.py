"""Payload schemas of the catalog, inventory and order job types (``fusion/catalog/jobs.py``,
``fusion/inventory/jobs.py``, ``fusion/orders/jobs.py``).

Payloads carry ids and figures only, never credentials: a field the schema does not know is
refused, so a token cannot be slipped into a job row or a Celery message through a payload.
Importing this module registers each schema under its job type's name with the engine's
``schemas.jobs.register_payload_schema``.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.inventory.service import PUSH_INVENTORY_JOB, SYNC_INVENTORY_JOB
from fusion.orders.service import RECONCILE_JOB
from fusion.plugins.base import Capability
from schemas.common import StrictSchema
from schemas.jobs import register_payload_schema

MAX_UPDATES = 10_000


class NoPayloadSchema(StrictSchema):
    """Jobs that take everything from the store and the catalog."""


class ListingPayloadSchema(StrictSchema):
    listing_id = fields.UUID(required=True)
    product_id = fields.UUID()  # informational: the handler re-reads the listing's product


class InventoryUpdateSchema(StrictSchema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=120))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    external_id = fields.String(validate=validate.Length(max=255), allow_none=True)


class InventoryPayloadSchema(StrictSchema):
    """Either exact ``updates`` or ``skus`` whose current hub quantity is pushed at run time
    (neither: every published listing of the store)."""

    skus = fields.List(
        fields.String(validate=validate.Length(min=1, max=120)),
        validate=validate.Length(min=1, max=MAX_UPDATES),
    )
    updates = fields.List(
        fields.Nested(InventoryUpdateSchema), validate=validate.Length(min=1, max=MAX_UPDATES)
    )


class ReconcileOrdersPayloadSchema(StrictSchema):
    since = fields.AwareDateTime(format="iso")


# By job type name, as ``schemas.jobs`` looks them up.
SCHEMAS: dict[str, type[Schema]] = {
    Capability.LIST_PRODUCTS: NoPayloadSchema,
    Capability.CREATE_PRODUCT: ListingPayloadSchema,
    Capability.UPDATE_PRODUCT: ListingPayloadSchema,
    Capability.DELETE_PRODUCT: ListingPayloadSchema,
    Capability.BULK_OPERATIONS: InventoryPayloadSchema,
    Capability.REAL_TIME_INVENTORY: InventoryPayloadSchema,
    SYNC_INVENTORY_JOB: NoPayloadSchema,
    PUSH_INVENTORY_JOB: InventoryPayloadSchema,
    RECONCILE_JOB: ReconcileOrdersPayloadSchema,
}

for _name, _schema in SCHEMAS.items():
    register_payload_schema(_name, _schema)
