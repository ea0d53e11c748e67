"""Per-org request quotas: a fixed one-minute window counted in Redis.

One org spending its allowance gets 429 with Retry-After; other orgs' counters are separate
keys, so they are unaffected. If Redis is unreachable the request is allowed: the quota
protects capacity, and refusing every request because the counter is down would be worse.

An org's requests are counted in Redis in batches while the org is far from its allowance:
each API process adds up its own requests and sends them (one INCRBY) at most every
:data:`SYNC_S`, so a busy org costs Redis one round trip per process per ``SYNC_S``, not one a
request. Once this process's estimate (the count Redis last returned plus what it has not sent)
reaches :data:`EXACT_FROM` of the allowance, every request is counted in Redis at once, so the
429 comes at the same request as with no batching; far from the limit, other processes'
unsent requests (at most ``SYNC_S`` worth) are all the count can lag. Login and password
attempts are always counted one by one (their allowance is tiny).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import redis

from api.context import hub
from fusion.errors import FusionError

log = logging.getLogger(__name__)
WINDOW_S = 60
SYNC_S = 0.1  # the longest an org's requests wait in this process before Redis hears of them
EXACT_FROM = 0.8  # of the allowance: from there on every request is counted in Redis at once


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
    _count_batched(f"org:{org_id}", hub().settings.request_quota_per_minute)


@dataclass
class _Tally:
    """This process's view of one counter in one window."""

    key: str
    known: int = 0  # what Redis said the count was, at the last send
    unsent: int = 0  # requests of this process Redis has not heard of yet
    sent_at: float = 0.0


_tallies: dict[tuple[int, str], _Tally] = {}
_tallies_lock = threading.Lock()


def _count_batched(subject: str, limit: int) -> None:
    now = time.time()
    window = int(now // WINDOW_S)
    key = f"fusion:quota:{subject}:{window}"
    client = hub().redis
    with _tallies_lock:
        tally = _tallies.get((id(client), subject))
        if tally is None or tally.key != key:  # a new window starts from nothing
            tally = _tallies[(id(client), subject)] = _Tally(key, sent_at=now)
        tally.unsent += 1
        near = tally.known + tally.unsent > limit * EXACT_FROM
        if not near and now - tally.sent_at < SYNC_S:
            return
        send, tally.unsent, tally.sent_at = tally.unsent, 0, now
    try:
        pipe = client.pipeline()
        pipe.incrby(key, send)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
    except redis.RedisError:
        log.warning("request quota unavailable (redis); allowing the request")
        return
    with _tallies_lock:
        tally.known = max(tally.known, count)
    if count > limit:
        raise QuotaExceeded(max(1, int((window + 1) * WINDOW_S - now) + 1))


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
