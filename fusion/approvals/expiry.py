"""Approval expiry: pending approvals past their ``expires_at`` become ``expired``.

Beat sends ``fusion.approvals.expire`` every 5 minutes; the task calls :func:`expire_due`.
The work is done by ``expire_approvals(batch)`` (migration 0005), the one narrow cross-org
path: it locks due rows with SKIP LOCKED (concurrent runs never take the same approval),
marks them expired and writes each one's ``approval.expire`` audit entry, by the system, in
the same transaction. An expired approval can no longer be decided, so its job never runs.

The same task first announces what is about to expire (:func:`announce_expiring`): each
pending approval expiring within ``FUSION_NOTIFY_EXPIRING_WITHIN_S`` is sent, once, to the
org's channels subscribed to ``approval.expiring``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, text

from fusion.approvals.models import Approval
from fusion.config import Settings
from fusion.db.session import Database
from fusion.notifications.models import Event
from fusion.notifications.service import emit

EXPIRE = text("SELECT org_id, approval_id FROM expire_approvals(:batch)")
EXPIRING = text("SELECT org_id, approval_id FROM expiring_approvals(:within)")
BATCH = 500
MAX_BATCHES = 40  # 20,000 per run; what is left waits five minutes for the next run


@dataclass(frozen=True)
class ExpiredApproval:
    org_id: uuid.UUID
    approval_id: uuid.UUID


def expire_due(
    database: Database, *, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> list[ExpiredApproval]:
    """Expire every pending approval whose ``expires_at`` has passed, ``batch`` per
    transaction (each batch commits with its audit entries), up to ``max_batches``; returns
    the approvals expired. Approved, rejected and not-yet-due ones are untouched. Raises
    ValueError if ``batch`` or ``max_batches`` is below 1; database errors propagate (what
    committed stays expired, the rest is picked up by the next run)."""
    if batch < 1 or max_batches < 1:
        raise ValueError("batch and max_batches must be at least 1")
    expired: list[ExpiredApproval] = []
    for _ in range(max_batches):
        with database.system_session() as session:
            rows = session.execute(EXPIRE, {"batch": batch}).all()
        expired.extend(ExpiredApproval(r.org_id, r.approval_id) for r in rows)
        if len(rows) < batch:
            break
    return expired


def approval_data(approval: Approval) -> dict[str, object]:
    """What an approval's notifications say of it: ids, the action, who asked, until when."""
    return {
        "approval_id": str(approval.id),
        "resource_type": approval.resource_type,
        "resource_id": str(approval.resource_id) if approval.resource_id else None,
        "action": approval.action,
        "requested_by": str(approval.requested_by) if approval.requested_by else None,
        "expires_at": approval.expires_at.isoformat(),
    }


def announce_expiring(database: Database, settings: Settings) -> int:
    """Queue ``approval.expiring`` for every pending approval expiring within
    ``settings.notify_expiring_within_s`` (once per approval and channel, however often it
    runs); returns the deliveries queued. The ids come from ``expiring_approvals()``, the
    narrow cross-org reader; each org's approvals are read and announced in its own scope."""
    with database.system_session() as session:
        rows = session.execute(EXPIRING, {"within": settings.notify_expiring_within_s}).all()
    by_org: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        by_org.setdefault(row.org_id, []).append(row.approval_id)
    queued = 0
    for org_id, ids in by_org.items():
        with database.org_session(org_id) as session:
            for approval in session.scalars(select(Approval).where(Approval.id.in_(ids))):
                queued += len(
                    emit(
                        session,
                        org_id=org_id,
                        event=Event.APPROVAL_EXPIRING,
                        data=approval_data(approval),
                        dedup_key=f"approval.expiring:{approval.id}",
                        link_path=f"/orgs/{org_id}/approvals/{approval.id}",
                    )
                )
    return queued
