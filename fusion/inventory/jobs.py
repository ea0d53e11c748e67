"""The inventory jobs: pushing the hub's stock to a store (real time, in bulk, or the push of
changed SKUs to a store without real-time inventory) and the recurring ``sync_inventory``
that reads back what the platform holds and corrects drift.

No two pushes to one store interleave: each holds the store's push lock (in Redis, shared by
every worker) from reading the hub's figures to the platform's answer, so a push never sends
a figure older than one already sent; a change committed after the read is carried by the
next push, which waits for the lock. Every handler reaches the platform only through
:func:`fusion.stores.client.store_client`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock
from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.errors import RateLimited, ValidationFailed
from fusion.inventory.channels import note_pushed, note_remote
from fusion.inventory.ledger import note_sync_corrections
from fusion.inventory.service import (
    PUBLISH_FOLLOW_UP_S,
    PUSH_INVENTORY_JOB,
    SYNC_INVENTORY_JOB,
    hub_stock,
    publishing,
)
from fusion.jobs import items
from fusion.jobs.context import JobContext
from fusion.jobs.items import ItemResult
from fusion.jobs.models import ItemStatus
from fusion.jobs.registry import Admitted, capability_job, job_type
from fusion.jobs.service import enqueue_or_join
from fusion.plugins.base import Capability, InventoryUpdate, ItemRefusal, PushRefused
from fusion.plugins.models import ContractLevel
from fusion.stores.client import Bound, redis_for, require, store_client
from fusion.stores.models import Store

REAL_TIME_PRIORITY = 10  # stock pushes pass catalog work on the same queue
PUSH_LOCK_TTL_S = 900  # longer than any push (a Shopify bulk run waits up to 600 s)
# A push that finds the lock held waits for it (up to PUSH_LOCK_WAIT_S) only if no other push
# to the store is waiting already; the others go back to pending at once, where later changes
# join them. Waiters hold worker threads and are no longer joinable, so if every push waited,
# each change would make another while a long push (Amazon's 5 patches a second) runs, until
# every thread of the platform's queue waited and the orders behind them (process_webhook)
# waited too. One waiter per store takes the lock the moment it is free.
PUSH_LOCK_WAIT_S = 5.0
PUSH_RETRY_S = (0.2, 5.0)  # bounds of a rescheduled push's delay (half the lock's age)


def push_lock_name(store_id: uuid.UUID) -> str:
    return f"fusion:push:{store_id}"


@contextmanager
def push_lock(ctx: JobContext, store_id: uuid.UUID, *, always_wait: bool = False) -> Iterator[None]:
    """Hold ``store_id``'s push lock for the block, waiting up to ``PUSH_LOCK_WAIT_S`` for it
    when no other job is waiting for it already (or ``always_wait``: the sync, which has read
    the whole remote catalog by the time it asks, and would read it again if rescheduled).
    Otherwise raises RateLimited: the job is rescheduled, no attempt spent, due in half the
    time the holder has held the lock (within ``PUSH_RETRY_S``). A lock whose holder died
    expires after ``PUSH_LOCK_TTL_S``."""
    client = redis_for(ctx)
    name = push_lock_name(store_id)
    lock = client.lock(name, timeout=PUSH_LOCK_TTL_S, blocking_timeout=PUSH_LOCK_WAIT_S)
    if not lock.acquire(blocking=False) and not _wait_for(client, lock, name, always_wait):
        left_ms = client.pttl(name)  # negative when the holder released it just now
        held_s = PUSH_LOCK_TTL_S - left_ms / 1000 if left_ms > 0 else 0.0
        low, high = PUSH_RETRY_S
        raise RateLimited(
            min(max(held_s / 2, low), high),
            f"another push to this store is running (for {held_s:.1f} s)",
        )
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:  # expired and perhaps taken: nothing of ours to release
            ctx.log("the store's push lock expired before the push ended", "warning")


def _wait_for(client: redis.Redis, lock: Lock, name: str, always: bool) -> bool:
    """Wait for the held ``lock`` as the store's one waiter (``always``: whoever waits);
    whether it was taken."""
    if always:
        return bool(lock.acquire())
    waiter = f"{name}:waiter"
    if not client.set(waiter, 1, nx=True, px=int(PUSH_LOCK_WAIT_S * 1000) + 1000):
        return False
    try:
        return bool(lock.acquire())
    finally:
        client.delete(waiter)


def _push(
    ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]
) -> tuple[str, Sequence[ItemRefusal]]:
    """Push ``updates`` the platform's best way; returns which way, and the items a bulk
    push did not get taken."""
    if not updates:
        return "none", ()
    if bound.level(Capability.BULK_OPERATIONS) != ContractLevel.UNSUPPORTED and len(updates) > 1:
        if bound.level(Capability.BULK_OPERATIONS) == ContractLevel.WORKAROUND:
            ctx.log(f"{bound.plugin.slug}: bulk inventory is a workaround", "info")
        return "bulk", _bulk(ctx, bound, updates)
    _set(ctx, bound, updates)
    return "per_item", ()


def _bulk(
    ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]
) -> Sequence[ItemRefusal]:
    """One bulk push; what the platform took is noted, and every item's result recorded."""
    refused = list(bound.client.bulk_set_inventory(updates) or ())
    untaken = {r.sku for r in refused}
    _pushed(ctx, bound, [u for u in updates if u.sku not in untaken])
    for refusal in refused:
        ctx.log(
            f"{refusal.sku}: {'skipped' if refusal.skipped else 'refused'}: {refusal.reason}",
            "info" if refusal.skipped else "warning",
            sku=refusal.sku,
        )
    _record_items(ctx, updates, refused)
    return refused


def _record_items(
    ctx: JobContext, updates: Sequence[InventoryUpdate], refused: Sequence[ItemRefusal]
) -> dict[str, int]:
    by_sku = {r.sku: r for r in refused}
    results = []
    for update in updates:
        refusal = by_sku.get(update.sku)
        if refusal is None:
            results.append(
                ItemResult(update.sku, ItemStatus.OK, data={"quantity": update.quantity})
            )
        else:
            status = ItemStatus.SKIPPED if refusal.skipped else ItemStatus.FAILED
            results.append(ItemResult(update.sku, status, refusal.reason))
    with ctx.session() as session:
        return items.record(session, org_id=ctx.org_id, job_id=ctx.job_id, results=results)


def _set(ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]) -> None:
    """``updates`` to the platform's real-time ``set_inventory``, then what it accepted noted.
    When it refused some SKUs (PushRefused), the accepted ones are noted all the same, each
    refused one is a warning in the job's log with the platform's reason, and the error goes on
    (the job fails naming them: a refused figure is never taken for sent)."""
    try:
        bound.client.set_inventory(updates)
    except PushRefused as exc:
        _pushed(ctx, bound, exc.accepted)
        for sku, reason in sorted(exc.refused.items()):
            ctx.log(f"{sku}: {bound.plugin.slug} refused the figure: {reason}", "warning", sku=sku)
        raise
    _pushed(ctx, bound, updates)


def _pushed(ctx: JobContext, bound: Bound, updates: Sequence[InventoryUpdate]) -> None:
    """What the platform accepted: noted per listing, and counted for the store."""
    note_pushed(ctx, bound.store.id, updates)
    if updates:
        telemetry.STORE_PUSHES.inc(bound.store.id, bound.plugin.slug)


def _outcome(refused: Sequence[ItemRefusal]) -> dict[str, int]:
    return {
        "failed": sum(1 for r in refused if not r.skipped),
        "skipped": sum(1 for r in refused if r.skipped),
    }


def _updates(ctx: JobContext) -> list[InventoryUpdate]:
    """Exactly the payload's ``updates``, or else the hub's current stock of its ``skus``
    (of every listing on sale on the store when neither is given). When a listing of those
    SKUs is being published, whose figures may be older than this push's, its SKUs are
    pushed again a moment later by a push of the same type (new, or joined)."""
    raw = ctx.payload.get("updates")
    if raw is not None:
        return [
            InventoryUpdate(
                sku=u["sku"], quantity=int(u["quantity"]), external_id=u.get("external_id")
            )
            for u in raw
        ]
    skus = ctx.payload.get("skus")
    store_id = ctx.require_store()
    with ctx.session() as session:
        waiting = publishing(session, store_id, skus)
        if waiting:
            enqueue_or_join(
                session,
                org_id=ctx.org_id,
                job_type=ctx.job_type,
                store_id=store_id,
                skus=waiting,
                delay_s=PUBLISH_FOLLOW_UP_S,
            )
            ctx.log(f"{len(waiting)} SKUs are being published: pushed again shortly", "info")
        return hub_stock(session, store_id, skus)


def admit_stock_push(
    session: Session, store_id: uuid.UUID | None, payload: dict[str, Any]
) -> Admitted:
    """A client names SKUs, never quantities: the push sends the hub's own figure of each
    (the ledger's, after the store's stock rules), so no exact quantity reaches a platform
    around the catalog and its approvals. Raises ValidationFailed naming ``payload.updates``
    when it is there; the hub's own enqueues may carry ``updates``."""
    if "updates" in payload:
        raise ValidationFailed(
            fields={
                "payload.updates": [
                    "exact quantities come from the hub alone: send skus, and the job pushes "
                    "the hub's figure of each"
                ]
            }
        )
    return Admitted(payload)


@capability_job(Capability.BULK_OPERATIONS, priority=-1, admit=admit_stock_push)
def bulk_operations(ctx: JobContext) -> dict[str, Any]:
    """Bulk inventory: the given updates, or the hub's current stock of ``skus`` (or of every
    published listing of the store when neither is given)."""
    with store_client(ctx, Capability.BULK_OPERATIONS) as bound, push_lock(ctx, bound.store.id):
        updates = _updates(ctx)
        ctx.progress(0, len(updates))
        refused = _bulk(ctx, bound, updates) if updates else ()
    ctx.progress(len(updates), len(updates))
    taken = len(updates) - len(refused)
    ctx.log(f"pushed {taken} of {len(updates)} quantities in bulk", "info", count=len(updates))
    return {"pushed": taken, **_outcome(refused)}


@capability_job(Capability.REAL_TIME_INVENTORY, priority=REAL_TIME_PRIORITY, admit=admit_stock_push)
def real_time_inventory(ctx: JobContext) -> dict[str, Any]:
    """Push the hub's quantity of ``skus`` now, read at run time so coalesced pushes send the
    latest figure (or exactly ``updates`` when the payload gives them)."""
    with store_client(ctx, Capability.REAL_TIME_INVENTORY) as bound, push_lock(ctx, bound.store.id):
        updates = _updates(ctx)
        _set(ctx, bound, updates)
    ctx.log(f"pushed {len(updates)} quantities", "info", skus=[u.sku for u in updates][:50])
    return {"pushed": len(updates)}


@job_type(
    PUSH_INVENTORY_JOB,
    internal="a change of stock enqueues it for every store without real-time inventory",
)
def push_inventory(ctx: JobContext) -> dict[str, Any]:
    """Push the hub's current figure of ``skus`` to a store whose platform has no real-time
    inventory, the platform's best way (bulk where it can, else listing by listing)."""
    with store_client(ctx) as bound, push_lock(ctx, bound.store.id):
        updates = _updates(ctx)
        ctx.progress(0, len(updates))
        how, refused = _push(ctx, bound, updates)
    ctx.progress(len(updates), len(updates))
    ctx.log(f"pushed {len(updates)} quantities ({how})", "info", skus=[u.sku for u in updates][:50])
    return {"pushed": len(updates) - len(refused), "push": how, **_outcome(refused)}


@job_type(SYNC_INVENTORY_JOB)
def sync_inventory(ctx: JobContext) -> dict[str, Any]:
    """Read back what the platform holds, push the hub's figure wherever it differs (bulk
    where the platform can), and record every drift corrected in the stock ledger (a
    ``sync_correction`` of the SKU) and the job's log. The hub's figures are read after the
    platform's, under the push lock, so an order taken meanwhile is never overwritten."""
    store_id = ctx.require_store()
    with store_client(ctx) as bound:
        require(ctx, bound.plugin, Capability.LIST_PRODUCTS)
        remote: dict[str, int] = {}
        for product in bound.client.list_products():
            remote.update(product.quantities)
        note_remote(ctx, store_id, remote)
        ctx.checkpoint()
        with push_lock(ctx, store_id, always_wait=True):
            with ctx.session() as session:
                hub = hub_stock(session, store_id, None)
            drift = _drift(ctx, hub, remote)
            ctx.progress(len(hub) - len(drift), len(hub))  # checked; the drift is pushed next
            how, refused = _push(ctx, bound, drift)
        channel = bound.plugin.slug
    with ctx.session() as session:
        note_sync_corrections(
            session,
            job_id=ctx.job_id,
            corrections={
                u.sku: f"{channel} held {remote[u.sku]}, is shown {u.quantity}: corrected"
                for u in drift
                if u.sku not in {r.sku for r in refused}
            },
        )
        store = session.get(Store, store_id)
        if store is not None:
            store.last_synced_at = datetime.now(UTC)
    ctx.progress(len(hub), len(hub))
    return {
        "checked": len(hub),
        "corrected": len(drift) - len(refused),
        "push": how,
        **_outcome(refused),
    }


def _drift(
    ctx: JobContext, hub: Sequence[InventoryUpdate], remote: dict[str, int]
) -> list[InventoryUpdate]:
    """The hub's figures the platform does not hold, each logged."""
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
    return drift


def _retry_skus(job_type: str) -> items.RetryPayload:
    def build(payload: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
        # The SKUs alone: the retry pushes the hub's figure of each as it is then.
        return job_type, {"skus": list(keys)}

    return build


items.retries_with(Capability.BULK_OPERATIONS.value, _retry_skus(Capability.BULK_OPERATIONS.value))
items.retries_with(PUSH_INVENTORY_JOB, _retry_skus(PUSH_INVENTORY_JOB))
# A sync's refused corrections are pushed again as a push of those SKUs.
items.retries_with(SYNC_INVENTORY_JOB, _retry_skus(PUSH_INVENTORY_JOB))
