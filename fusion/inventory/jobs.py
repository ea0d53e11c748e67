"""The inventory jobs: pushing the hub's stock to a store (real time, or in bulk) and the
recurring ``sync_inventory`` that reads back what the platform holds and corrects drift.

Every handler re-reads the hub's figures at run time, so a coalesced or re-run push sends the
latest figure, and reaches the platform only through :func:`fusion.stores.client.store_client`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fusion.inventory.service import SYNC_INVENTORY_JOB, hub_stock
from fusion.jobs.context import JobContext
from fusion.jobs.registry import capability_job, job_type
from fusion.plugins.base import Capability, InventoryUpdate
from fusion.plugins.models import ContractLevel
from fusion.stores.client import Bound, require, store_client
from fusion.stores.models import Store

REAL_TIME_PRIORITY = 10  # stock pushes pass catalog work on the same queue


def _push(ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]) -> str:
    """Push ``updates`` the platform's best way; returns which way."""
    if not updates:
        return "none"
    if bound.level(Capability.BULK_OPERATIONS) != ContractLevel.UNSUPPORTED and len(updates) > 1:
        if bound.level(Capability.BULK_OPERATIONS) == ContractLevel.WORKAROUND:
            ctx.log(f"{bound.plugin.slug}: bulk inventory is a workaround", "info")
        bound.client.bulk_set_inventory(updates)
        return "bulk"
    bound.client.set_inventory(updates)
    return "per_item"


def _updates(ctx: JobContext) -> list[InventoryUpdate]:
    """Exactly the payload's ``updates``, or else the hub's current stock of its ``skus``
    (of every published listing of the store when neither is given)."""
    raw = ctx.payload.get("updates")
    if raw is not None:
        return [
            InventoryUpdate(
                sku=u["sku"], quantity=int(u["quantity"]), external_id=u.get("external_id")
            )
            for u in raw
        ]
    with ctx.session() as session:
        return hub_stock(session, ctx.require_store(), ctx.payload.get("skus"))


@capability_job(Capability.BULK_OPERATIONS, priority=-1)
def bulk_operations(ctx: JobContext) -> dict[str, Any]:
    """Bulk inventory: the given updates, or the hub's current stock of ``skus`` (or of every
    published listing of the store when neither is given)."""
    updates = _updates(ctx)
    with store_client(ctx, Capability.BULK_OPERATIONS) as bound:
        bound.client.bulk_set_inventory(updates)
    ctx.log(f"pushed {len(updates)} quantities in bulk", "info", count=len(updates))
    return {"pushed": len(updates)}


@capability_job(Capability.REAL_TIME_INVENTORY, priority=REAL_TIME_PRIORITY)
def real_time_inventory(ctx: JobContext) -> dict[str, Any]:
    """Push the hub's quantity of ``skus`` now, read at run time so coalesced pushes send the
    latest figure (or exactly ``updates`` when the payload gives them)."""
    updates = _updates(ctx)
    with store_client(ctx, Capability.REAL_TIME_INVENTORY) as bound:
        bound.client.set_inventory(updates)
    ctx.log(f"pushed {len(updates)} quantities", "info", skus=[u.sku for u in updates][:50])
    return {"pushed": len(updates)}


@job_type(SYNC_INVENTORY_JOB)
def sync_inventory(ctx: JobContext) -> dict[str, Any]:
    """Read back what the platform holds, push the hub's figure wherever it differs (bulk
    where the platform can), and log every drift corrected."""
    store_id = ctx.require_store()
    with ctx.session() as session:
        hub = hub_stock(session, store_id, None)
    with store_client(ctx) as bound:
        require(ctx, bound.plugin, Capability.LIST_PRODUCTS)
        remote: dict[str, int] = {}
        for product in bound.client.list_products():
            remote.update(product.quantities)
        ctx.checkpoint()
        drift: list[InventoryUpdate] = []
        for update in hub:
            held = remote.get(update.sku)
            if held is None:
                ctx.log(f"{update.sku}: not found on the platform", "warning", sku=update.sku)
            elif held != update.quantity:
                ctx.log(
                    f"{update.sku}: platform held {held}, hub holds {update.quantity}; corrected",
                    "warning",
                    sku=update.sku,
                    platform=held,
                    hub=update.quantity,
                )
                drift.append(update)
        how = _push(ctx, bound, drift)
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is not None:
            store.last_synced_at = datetime.now(UTC)
    return {"checked": len(hub), "corrected": len(drift), "push": how}
