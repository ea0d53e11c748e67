"""Writing a store's bucket state into ``stores.rate_limit_state`` (a view for people and the
API; the bucket in Redis is the truth)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from fusion.db.session import Database

# SKIP LOCKED: a job holding the store row in its own transaction must never wait on (or
# deadlock with) this cosmetic write; the next write catches up.
_UPDATE = text(
    "UPDATE stores SET rate_limit_state = CAST(:state AS jsonb) "
    "WHERE id = (SELECT id FROM stores WHERE id = :id FOR UPDATE SKIP LOCKED)"
)


def persist_state(
    database: Database, org_id: uuid.UUID, store_id: uuid.UUID, state: Mapping[str, Any]
) -> bool:
    """Write ``state`` to the store's ``rate_limit_state`` in its own short transaction.

    Returns False (and writes nothing) when the store row is locked by another transaction
    or is not visible to ``org_id``."""
    with database.org_session(org_id) as session:
        result = session.execute(_UPDATE, {"state": json.dumps(dict(state)), "id": store_id})
        return bool(getattr(result, "rowcount", 0))


def shown(state: Mapping[str, Any], *, throttles_last_hour: int | None) -> dict[str, Any]:
    """The store's rate-limit state as people are shown it: the bucket as last written (all
    None before the store's first call), its fill (tokens over capacity, 0 to 1) and the
    throttles of the last hour (None when they could not be read)."""
    capacity, tokens = state.get("capacity"), state.get("tokens")
    fill = None
    if isinstance(capacity, int | float) and isinstance(tokens, int | float) and capacity > 0:
        fill = round(min(max(tokens / capacity, 0.0), 1.0), 3)
    return {
        "tokens": tokens,
        "capacity": capacity,
        "refill_rate": state.get("refill_rate"),
        "fill": fill,
        "source": state.get("source"),
        "updated_at": state.get("updated_at"),
        "last_throttled_at": state.get("last_throttled_at"),
        "throttles_last_hour": throttles_last_hour,
    }
