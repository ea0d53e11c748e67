"""The two housekeeping sweeps beat runs every few seconds: reap and dispatch.

- :func:`reap`: jobs whose lease expired (their worker died or hung) go back to pending and
  are published at once, or fail for good after max_attempts.
- :func:`dispatch_due`: due pending jobs with no message, or a stale one (lost with a Redis
  restart, a failed publish, a retry or a delay that just fell due), are published, each
  org's first jobs before anyone's backlog.

Both work in batches through SECURITY DEFINER functions that lock with SKIP LOCKED, so any
number of them may run at once without handing out a job twice. Each batch commits before
its messages are published (a message must never arrive before its row).
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import text

from fusion.db.session import Database
from fusion.jobs import dispatch, lanes

REAP = text("SELECT id, queue, status FROM jobs_reap(:limit)")
DISPATCH = text("SELECT id, queue, org_rank, priority FROM jobs_dispatch_due(:limit, :stale)")
BATCH = 500
MAX_BATCHES = 40
# A message older than this with its job still pending is presumed lost and sent again; a
# duplicate costs one no-op claim, so erring short is cheap.
STALE_S = 30


def reap(database: Database, *, batch: int = BATCH) -> dict[str, int]:
    """Give expired leases back (or fail them); returns counts by new status. Rescued jobs
    are published right away. Raises only on database errors (the next sweep retries)."""
    counts: dict[str, int] = defaultdict(int)
    for _ in range(MAX_BATCHES):
        with database.system_session() as session:
            rows = session.execute(REAP, {"limit": batch}).all()
        for row in rows:
            counts[row.status] += 1
        dispatch.publish_now([(r.id, r.queue) for r in rows if r.status == "pending"])
        if len(rows) < batch:
            break
    return dict(counts)


def dispatch_due(database: Database, *, stale_s: int = STALE_S, batch: int = BATCH) -> int:
    """Publish due pending jobs whose message is missing or older than ``stale_s``; returns
    how many were published. Without an installed dispatcher it does nothing and returns 0
    (marking rows dispatched that nobody publishes would hide them for ``stale_s``)."""
    if dispatch.installed() is None:
        return 0
    total = 0
    for _ in range(MAX_BATCHES):
        with database.system_session() as session:
            rows = session.execute(DISPATCH, {"limit": batch, "stale": stale_s}).all()
        by_lane: dict[lanes.Lane, list[tuple[uuid.UUID, str]]] = defaultdict(list)
        for r in rows:
            lane = lanes.lane_for_rank(priority=r.priority, org_rank=r.org_rank)
            by_lane[lane].append((r.id, r.queue))
        for lane in sorted(by_lane):
            dispatch.publish_now(by_lane[lane], lane)
        total += len(rows)
        if len(rows) < batch:
            break
    return total
