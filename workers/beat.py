"""Beat's scheduler: Celery's own (state in the schedule file), sending only while it holds
the beat lease in Redis (``fusion.runtime.beat``), and writing a heartbeat every tick.

``celeryconfig.beat_scheduler`` names it, so every beat the hub runs uses it, whether started
by ``fusion beat`` or ``celery -A workers.app beat``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.beat import PersistentScheduler

from fusion.config import Settings
from fusion.runtime.beat import BeatLease, heartbeat_path, write_heartbeat

log = logging.getLogger(__name__)

# Redis calls of the lease give up fast: a tick must not hang on a broker that is away.
REDIS_TIMEOUT_S = 2.0


class SingleBeatScheduler(PersistentScheduler):
    """A PersistentScheduler that sends due tasks only while holding the beat lease.

    Every tick renews the lease (or tries to take it) and writes the heartbeat, and no tick
    sleeps longer than a third of the lease's life, so a live holder never loses it to a
    standby and a standby notices a dead holder within one lease TTL plus a third.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = Settings.from_env()
        self._ttl_s = settings.beat_lease_ttl_s
        self._heartbeat = heartbeat_path(settings.home)
        self._heartbeat.parent.mkdir(parents=True, exist_ok=True)
        client = redis.Redis.from_url(
            settings.redis_url or "redis://127.0.0.1:6379/0",
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self.lease = BeatLease(client, ttl_s=self._ttl_s)
        self._holding: bool | None = None  # None until the first tick
        super().__init__(*args, **kwargs)

    @property
    def _recheck_s(self) -> float:
        return max(0.2, self._ttl_s / 3)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        held = self._hold()
        write_heartbeat(self._heartbeat, holder=held)
        if not held:
            return self._recheck_s
        return min(float(super().tick(*args, **kwargs)), self._recheck_s)

    def _hold(self) -> bool:
        try:
            held = self.lease.hold()
        except redis.RedisError as exc:
            if self._holding is not False:
                log.warning("beat: Redis unreachable (%s); sending nothing until it is back", exc)
            self._holding = False
            return False
        if held and not self._holding:
            log.info("beat: holding the beat lease (%s); sending the schedule", self.lease.token)
        elif not held and self._holding is not False:
            log.info(
                "beat: another beat holds the lease (%s); standing by, taking over if it "
                "stops renewing for %gs",
                self.lease.holder(),
                self._ttl_s,
            )
        self._holding = held
        return held

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self.lease.release()
                log.info("beat: lease released")
            self._holding = False
