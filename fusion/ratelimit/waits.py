"""Rate-limit waits, counted in Redis by the worker that waited and read back by the API's
``/metrics`` (``fusion.metrics``), so every process reports the same figures."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
RATE_LIMIT_WAITS_KEY = "fusion:metrics:rate_limit_waits"
RATE_LIMIT_SECONDS_KEY = "fusion:metrics:rate_limit_wait_seconds"


def record_rate_limit_wait(redis_client: Any, platform: str, seconds: float) -> None:
    """Count one wait of ``seconds`` for ``platform``'s rate limit. Never raises: a metric
    must not fail the job that waited."""
    try:
        pipe = redis_client.pipeline()
        pipe.hincrby(RATE_LIMIT_WAITS_KEY, platform, 1)
        pipe.hincrbyfloat(RATE_LIMIT_SECONDS_KEY, platform, float(seconds))
        pipe.execute()
    except Exception:
        log.debug("rate-limit wait not counted (redis unavailable)")
