"""Which hub processes are alive: each worker's and beat's last heartbeat (``fusion.telemetry``).

The heartbeats are the hub's, not a tenant's: any org member may see them, and they carry a
node name and a time, nothing of any job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fusion import telemetry

# A process is taken for alive while its last heartbeat is younger than this: a few missed
# beats (the workers beat every HEARTBEAT_S; beat sends a sweep every few seconds).
ALIVE_WITHIN_S = 4 * telemetry.HEARTBEAT_S
FORGET_AFTER_S = 24 * 3600  # as /metrics: a worker silent this long is no longer listed


@dataclass(frozen=True)
class Heartbeat:
    name: str
    last_seen_at: datetime
    age_s: float
    alive: bool


@dataclass(frozen=True)
class Runtime:
    workers: list[Heartbeat]
    beat: Heartbeat | None
    broker_up: bool


def _beat(name: str, at: float, now: float) -> Heartbeat:
    age = max(now - at, 0.0)
    return Heartbeat(
        name=name,
        last_seen_at=datetime.fromtimestamp(at, UTC),
        age_s=round(age, 1),
        alive=age <= ALIVE_WITHIN_S,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def runtime(redis_client: Any) -> Runtime:
    """Every worker heard of in the last day (by node name) and beat, with when each was last
    heard of; ``broker_up`` False (and nothing listed) when Redis cannot be read."""
    try:
        pipe = redis_client.pipeline(transaction=False)
        pipe.hgetall(telemetry.WORKER_HEARTBEAT_KEY)
        pipe.get(telemetry.BEAT_HEARTBEAT_KEY)
        workers, beat = pipe.execute()
    except Exception:
        return Runtime(workers=[], beat=None, broker_up=False)
    now = time.time()
    shown = [
        _beat(_text(name), float(at), now)
        for name, at in sorted(workers.items())
        if now - float(at) <= FORGET_AFTER_S
    ]
    return Runtime(
        workers=shown,
        beat=_beat("beat", float(beat), now) if beat is not None else None,
        broker_up=True,
    )
