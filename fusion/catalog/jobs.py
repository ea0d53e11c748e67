"""The ``delete_catalog_item`` job: the delete of a product or variant that waited for an
approval, enqueued when the approval is granted (``fusion.approvals.service.decide``).
Imported by workers at start (``fusion.jobs.registry.BUILTIN_MODULES``).

Safe to run twice: the row is locked and re-read, and one already gone is left alone.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import fusion.db.models  # noqa: F401  (every table, so foreign keys resolve in a worker)
from fusion.catalog.service import DELETE_JOB, delete_approved
from fusion.errors import PermanentError
from fusion.jobs.registry import JobType, register

if TYPE_CHECKING:
    from fusion.jobs.context import JobContext


def delete_catalog_item(ctx: JobContext) -> dict[str, Any]:
    """Delete the product (with its variants and listings) or the variant the payload names.
    Raises PermanentError for a payload that names no catalog item."""
    resource_type = str(ctx.payload.get("resource_type"))
    try:
        resource_id = uuid.UUID(str(ctx.payload.get("resource_id")))
        with ctx.session() as session:
            deleted = delete_approved(session, ctx.org_id, resource_type, resource_id)
    except ValueError as exc:
        raise PermanentError(f"not a catalog item to delete: {exc}") from None
    label = resource_type.replace("_", " ")
    ctx.log(f"{label} {resource_id} {'deleted' if deleted else 'was already gone'}", "info")
    return {"resource_type": resource_type, "resource_id": str(resource_id), "deleted": deleted}


register(
    JobType(
        DELETE_JOB,
        delete_catalog_item,
        needs_store=False,
        payload_schema="catalog_jobs.delete_catalog_item",
        internal="delete the product or variant instead; an approval enqueues this job",
    )
)
