"""Lanes: how a job's message overtakes others on the same queue (fairness and priority).

Each queue has three lanes in the broker (Redis priority lists, 0 = served first). An org's
big backlog goes to the bulk lane, so another org's new job, in the normal lane, does not
wait behind it; jobs with a positive priority (real-time inventory pushes) take the urgent
lane and pass both. Postgres still decides what runs: a lane only orders messages.
"""

from __future__ import annotations

import enum

# An org with this many jobs waiting on one queue is a backlog: its new jobs go to bulk.
BULK_BACKLOG = 50


class Lane(enum.IntEnum):
    URGENT = 0
    NORMAL = 3
    BULK = 6


def lane_for(*, priority: int, backlog: int) -> Lane:
    """The lane of a job of ``priority`` whose org has ``backlog`` jobs waiting on its queue
    (counting this one's batch). Negative priority always rides in bulk."""
    if priority > 0:
        return Lane.URGENT
    if priority < 0 or backlog >= BULK_BACKLOG:
        return Lane.BULK
    return Lane.NORMAL


def lane_for_rank(*, priority: int, org_rank: int) -> Lane:
    """The lane of a job the dispatcher sweep republishes: the org's ``org_rank``-th due job
    on that queue (1-based), so each org's first jobs ride ahead of anyone's backlog."""
    return lane_for(priority=priority, backlog=org_rank)
