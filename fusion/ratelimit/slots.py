"""Concurrency slots counted in Redis: at most N things open at once per subject.

A slot is a member of one sorted set per subject, scored with the time its lease runs out.
Holders renew their lease while they run (:meth:`Slot.renew`) and give the slot back when
they end (:meth:`Slot.release`); a holder that dies without giving it back (a killed process)
stops renewing, and its slot is free again once the lease has run out. Taking a slot first
drops the expired members, then takes one in every subject or in none (one Lua script, so two
processes cannot both take the last slot).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion.errors import FusionError

KEY_PREFIX = "fusion:slots:"
LEASE_S = 30.0  # a dead holder's slot is free again after this long
RENEW_EVERY_S = LEASE_S / 3

# KEYS: the subjects' sets. ARGV: now, expiry, member, lease (s), then each subject's limit.
# Answers 0 when taken, else the 1-based index of the first subject that is full.
_TAKE = """
local now, expiry, member, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, member)
  redis.call('EXPIRE', key, math.ceil(lease) + 1)
end
return 0
"""


class SlotsTaken(FusionError):
    """Too many open at once; close one or retry shortly."""

    def __init__(self, subject: str, limit: int) -> None:
        super().__init__(f"At most {limit} open at once for this {subject}; close one first.")
        self.subject = subject
        self.limit = limit
        self.retry_after_s = int(RENEW_EVERY_S)


@dataclass(frozen=True)
class Limit:
    """``limit`` concurrent slots for one subject; ``kind`` names it in the refusal."""

    kind: str
    key: str
    limit: int


@dataclass
class Slot:
    """One taken slot in every subject of its :func:`take`; renew it, then release it."""

    redis: Any
    keys: tuple[str, ...]
    member: str
    renewed_at: float = field(default_factory=time.monotonic)
    released: bool = False

    def renew(self) -> None:
        """Extend the lease if a third of it has passed; Redis errors are ignored (the lease
        then runs out, which frees the slot: the safe direction)."""
        if self.released or time.monotonic() - self.renewed_at < RENEW_EVERY_S:
            return
        self.renewed_at = time.monotonic()
        expiry = time.time() + LEASE_S
        try:
            pipe = self.redis.pipeline()
            for key in self.keys:
                pipe.zadd(key, {self.member: expiry}, xx=True)
                pipe.expire(key, int(LEASE_S) + 1)
            pipe.execute()
        except Exception:  # noqa: S110 - see the docstring
            pass

    def release(self) -> None:
        """Give the slot back (once; later calls do nothing)."""
        if self.released:
            return
        self.released = True
        try:
            pipe = self.redis.pipeline()
            for key in self.keys:
                pipe.zrem(key, self.member)
            pipe.execute()
        except Exception:  # noqa: S110 - the lease frees it
            pass


def take(redis_client: Any, limits: Sequence[Limit]) -> Slot:
    """A slot in every one of ``limits`` at once; raises SlotsTaken naming the first full one
    (nothing is taken then). Raises the client's error if Redis cannot be reached."""
    now = time.time()
    member = uuid.uuid4().hex
    keys = tuple(KEY_PREFIX + limit.key for limit in limits)
    full = int(
        redis_client.eval(
            _TAKE,
            len(keys),
            *keys,
            now,
            now + LEASE_S,
            member,
            LEASE_S,
            *(limit.limit for limit in limits),
        )
    )
    if full:
        refused = limits[full - 1]
        raise SlotsTaken(refused.kind, refused.limit)
    return Slot(redis_client, keys, member)


def held(redis_client: Any, key: str) -> int:
    """How many slots of subject ``key`` are held now (expired leases not counted)."""
    return int(redis_client.zcount(KEY_PREFIX + key, time.time(), "+inf"))
