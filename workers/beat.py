"""Celery beat's scheduler with a heartbeat: each tick of its loop notes the time in Redis
(``fusion_beat_heartbeat_timestamp_seconds``), so a beat that died or hangs shows."""

from __future__ import annotations

import time
from typing import Any

import redis
from celery.beat import PersistentScheduler

from fusion import telemetry

# Ticks come every sweep interval (seconds); one write in this many seconds is enough.
NOTE_EVERY_S = 5.0


class HeartbeatScheduler(PersistentScheduler):
    """The default scheduler (a schedule file) that also beats."""

    _noted = 0.0

    def setup_schedule(self) -> None:
        super().setup_schedule()
        # The broker is the hub's Redis: beat reads no other setting (celeryconfig).
        telemetry.install(redis.Redis.from_url(self.app.conf.broker_url))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._noted >= NOTE_EVERY_S:
            self._noted = now
            telemetry.beat_heartbeat()
        return float(super().tick(*args, **kwargs))
