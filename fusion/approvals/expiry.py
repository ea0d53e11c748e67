"""Approval expiry: pending approvals past their ``expires_at`` become ``expired``.

Beat sends ``fusion.approvals.expire`` every 5 minutes; the task calls :func:`expire_due`.
The work is done by ``expire_approvals(batch)`` (migration 0005), the one narrow cross-org
path: it locks due rows with SKIP LOCKED (concurrent runs never take the same approval),
marks them expired and writes each one's ``approval.expire`` audit entry, by the system, in
the same transaction. An expired approval can no longer be decided, so its job never runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text

from fusion.db.session import Database

EXPIRE = text("SELECT org_id, approval_id FROM expire_approvals(:batch)")
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
