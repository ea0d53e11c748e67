"""Per-org request quotas: a fixed one-minute window counted in Redis.

One org spending its allowance gets 429 with Retry-After; other orgs' counters are separate
keys, so they are unaffected. If Redis is unreachable the request is allowed: the quota
protects capacity, and refusing every request because the counter is down would be worse.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

import redis

from api.context import hub
from fusion.errors import FusionError

log = logging.getLogger(__name__)
WINDOW_S = 60


class QuotaExceeded(FusionError):
    """Too many requests for this organisation; retry after the window resets."""

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# Login attempts per email per minute: slows password guessing without locking anyone out
# for long (the window is one minute).
LOGIN_ATTEMPTS_PER_MINUTE = 10


def charge(org_id: uuid.UUID) -> None:
    """Count one request for ``org_id``; raises QuotaExceeded once the minute's quota is spent."""
    _count(f"org:{org_id}", hub().settings.request_quota_per_minute)


def charge_login(email: str) -> None:
    """Count one login attempt for ``email`` (hashed: no addresses in Redis keys)."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    _count(f"login:{digest}", LOGIN_ATTEMPTS_PER_MINUTE)


def charge_password_check(user_id: uuid.UUID) -> None:
    """Count one check of a signed-in person's current password (a stolen access token must
    not become a way to guess it), with the same allowance as logins."""
    _count(f"password:{user_id}", LOGIN_ATTEMPTS_PER_MINUTE)


def _count(subject: str, limit: int) -> None:
    now = time.time()
    window = int(now // WINDOW_S)
    key = f"fusion:quota:{subject}:{window}"
    try:
        pipe = hub().redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
    except redis.RedisError:
        log.warning("request quota unavailable (redis); allowing the request")
        return
    if count > limit:
        raise QuotaExceeded(max(1, int((window + 1) * WINDOW_S - now) + 1))
