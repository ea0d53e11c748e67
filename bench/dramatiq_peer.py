"""The second baseline of bench/engine.py: Dramatiq on the same Redis, a no-op actor.

    dramatiq dramatiq_peer --processes 2 --threads 8   (PYTHONPATH=bench, FUSION_REDIS_URL set)

Dramatiq (the ``bench`` extra) is the fastest Python job queue measured on this machine; it
gives up what the engine keeps (no durable record, no exactly-once effect), so it is the
ceiling the engine is measured against. The actor only counts itself in Redis, as the raw
Celery task does: ``bench:dramatiq:done`` and the time of the last one, ``bench:dramatiq:last``.
"""

from __future__ import annotations

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench-dramatiq"
DONE = "bench:dramatiq:done"
LAST = "bench:dramatiq:last"

URL = os.environ.get("FUSION_REDIS_URL") or "redis://127.0.0.1:6379/0"
# A namespace of its own: nothing of Celery's or the hub's keys is touched.
broker = RedisBroker(url=URL, namespace="bench-dramatiq")
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    _client.pipeline().incr(DONE).set(LAST, time.time()).execute()
