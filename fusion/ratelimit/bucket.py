"""A token bucket per store, shared atomically by every worker process (a Redis Lua script).

Capacity and refill rate come from the plugin's :class:`RateLimitSpec`, may be overridden per
store (``stores.rate_limit_config``), and are corrected by what the platform reports
(``throttleStatus``, ``x-limit-per-second``, ``Retry-After``, remaining-quota headers).

Why a margin: the hub grants a token a few milliseconds before the platform sees the call, and
latency jitter can bunch calls up at the platform's end; running a few percent under the
platform's allowance is what keeps the throttled count at zero (the target is >= 0.9 of the
allowed rate with no throttled responses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from fusion.errors import ValidationFailed
from fusion.ratelimit.spec import RateLimitSpec

KEY_PREFIX = "fusion:ratelimit:"
IDLE_EXPIRY_S = 86_400  # a bucket untouched for a day is forgotten (it would be full anyway)
DEFAULT_MARGIN = 0.05

# Returns {granted, wait_s, tokens, capacity, refill_rate, last_throttled_at, source} as
# strings: Redis truncates Lua numbers to integers on the way out.
_SCRIPT = """
local key = KEYS[1]
local op = ARGV[1]
local cap = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local override = ARGV[4] == '1'
local margin = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', key, 'tokens', 'ts', 'p_cap', 'p_rate', 'blocked_until',
                     'last_throttled_at', 'source', 'next_slot')
local source = h[7] or 'hub'
if op == 'feedback' then
  if ARGV[9] ~= '' then h[3] = ARGV[9]; redis.call('HSET', key, 'p_cap', ARGV[9]) end
  if ARGV[10] ~= '' then h[4] = ARGV[10]; redis.call('HSET', key, 'p_rate', ARGV[10]) end
end
local p_cap = tonumber(h[3])
local p_rate = tonumber(h[4])
if p_cap then if override then cap = math.min(cap, p_cap) else cap = p_cap end end
if p_rate then if override then rate = math.min(rate, p_rate) else rate = p_rate end end
cap = math.max(1, cap * (1 - margin))
rate = math.max(0.001, rate * (1 - margin))
local tokens = tonumber(h[1])
local ts = tonumber(h[2]) or now
if tokens == nil then tokens = cap end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local blocked = tonumber(h[5]) or 0
local last_throttled = h[6] or ''
local granted = 0
local wait = 0
if op == 'take' then
  local cost = math.min(tonumber(ARGV[6]), cap)
  if now >= blocked and tokens >= cost then
    tokens = tokens - cost
    granted = 1
  else
    -- Refused callers get staggered slots, one cost's worth of refill apart, so a crowd of
    -- rescheduled jobs comes back one by one instead of all at once (and refused again).
    local earliest = math.max(blocked, now + (cost - tokens) / rate)
    if ARGV[12] == '1' then
      local slot = math.max(earliest, tonumber(h[8]) or 0)
      redis.call('HSET', key, 'next_slot', tostring(slot + cost / rate))
      wait = slot - now
    else
      wait = earliest - now
    end
  end
elseif op == 'feedback' then
  if ARGV[7] ~= '' then
    tokens = math.min(tokens, tonumber(ARGV[7]))
    source = 'platform'
  end
  if ARGV[8] ~= '' then
    local ra = tonumber(ARGV[8])
    tokens = 0
    blocked = math.max(blocked, now + ra)
    last_throttled = tostring(now)
    source = 'platform'
  end
  if ARGV[9] ~= '' or ARGV[10] ~= '' then source = 'platform' end
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now),
           'blocked_until', tostring(blocked), 'last_throttled_at', last_throttled,
           'source', source)
redis.call('EXPIRE', key, tonumber(ARGV[11]))
return {tostring(granted), tostring(wait), tostring(tokens), tostring(cap), tostring(rate),
        last_throttled, source}
"""


@dataclass(frozen=True)
class BucketConfig:
    """How big a store's bucket is and how fast it refills (before the safety margin)."""

    capacity: float
    refill_rate: float
    overridden: bool = False
    margin: float = DEFAULT_MARGIN

    @classmethod
    def resolve(cls, spec: RateLimitSpec, store_config: Mapping[str, Any] | None) -> BucketConfig:
        """The plugin's limits, with the store's ``rate_limit_config`` over them.

        The store config may set ``requests_per_second`` (or ``refill_rate``), ``burst_size``
        (or ``capacity``) and ``safety_margin`` (0..0.5). Raises ValidationFailed naming the
        field for a value that is not a positive number (or a margin out of range)."""
        cfg = dict(store_config or {})
        capacity = float(spec.burst_size)
        rate = float(spec.requests_per_second)
        overridden = False
        errors: dict[str, list[str]] = {}
        for names, which in (
            (("burst_size", "capacity"), "capacity"),
            (("requests_per_second", "refill_rate"), "rate"),
        ):
            for name in names:
                if name not in cfg:
                    continue
                value = cfg[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    errors[name] = ["must be a positive number"]
                    continue
                overridden = True
                if which == "capacity":
                    capacity = float(value)
                else:
                    rate = float(value)
        margin = cfg.get("safety_margin", DEFAULT_MARGIN)
        is_number = isinstance(margin, int | float) and not isinstance(margin, bool)
        if not is_number or not 0 <= margin <= 0.5:
            errors["safety_margin"] = ["must be a number between 0 and 0.5"]
            margin = DEFAULT_MARGIN
        if errors:
            raise ValidationFailed("invalid rate_limit_config", fields=errors)
        return cls(capacity=capacity, refill_rate=rate, overridden=overridden, margin=float(margin))


@dataclass(frozen=True)
class Grant:
    """The answer to :meth:`TokenBucket.take`: granted, or how long until it would be."""

    granted: bool
    wait_s: float
    tokens: float


class TokenBucket:
    """One store's bucket in Redis. Every method is one atomic script call; Redis's clock is
    the only clock, so processes on different machines agree."""

    def __init__(self, client: redis.Redis, store_id: str, config: BucketConfig) -> None:
        self.client = client
        self.store_id = str(store_id)
        self.config = config
        self.key = f"{KEY_PREFIX}{{{self.store_id}}}"
        self._script = client.register_script(_SCRIPT)

    def _run(
        self,
        op: str,
        *,
        cost: float = 0.0,
        available: float | None = None,
        retry_after_s: float | None = None,
        capacity: float | None = None,
        refill_rate: float | None = None,
        queue: bool = True,
    ) -> list[str]:
        def opt(value: float | None) -> str:
            return "" if value is None else repr(float(value))

        args = [
            op,
            repr(self.config.capacity),
            repr(self.config.refill_rate),
            "1" if self.config.overridden else "0",
            repr(self.config.margin),
            repr(float(cost)),
            opt(available),
            opt(retry_after_s),
            opt(capacity),
            opt(refill_rate),
            str(IDLE_EXPIRY_S),
            "1" if queue else "0",
        ]
        raw = self._script(keys=[self.key], args=args)
        return [v.decode() if isinstance(v, bytes) else str(v) for v in raw]

    def take(self, cost: float = 1.0, *, queue: bool = True) -> Grant:
        """Take ``cost`` tokens if they are there (granted), else take nothing and say how
        many seconds to wait. Refused callers are given staggered waits (each one cost's
        worth of refill after the previous), so many refused jobs return one by one;
        ``queue=False`` asks for the bare wait without taking a place in that line (a caller
        that will wait inline, briefly, rather than be rescheduled). A cost
        above the capacity needs a full bucket (it would otherwise never be granted).
        Raises ValueError for a negative cost."""
        if cost < 0:
            raise ValueError("cost must not be negative")
        out = self._run("take", cost=cost, queue=queue)
        return Grant(granted=out[0] == "1", wait_s=float(out[1]), tokens=float(out[2]))

    def feedback(
        self,
        *,
        available: float | None = None,
        retry_after_s: float | None = None,
        capacity: float | None = None,
        refill_rate: float | None = None,
    ) -> None:
        """Correct the bucket from what the platform said: ``available`` lowers the tokens to
        it (never raises them: calls in flight are not yet counted there); ``retry_after_s``
        empties the bucket and blocks takes until then; ``capacity``/``refill_rate`` replace
        the configured limits (a store override still caps them). Non-positive or absent
        values are ignored."""

        def pos(value: float | None, *, zero_ok: bool = False) -> float | None:
            if value is None or value < 0 or (value == 0 and not zero_ok):
                return None
            return value

        self._run(
            "feedback",
            available=pos(available, zero_ok=True),
            retry_after_s=pos(retry_after_s),
            capacity=pos(capacity),
            refill_rate=pos(refill_rate),
        )

    def state(self) -> dict[str, Any]:
        """The bucket as ``stores.rate_limit_state`` holds it (see docs/plugins.md)."""
        out = self._run("peek")
        last = out[5]
        return {
            "capacity": round(float(out[3]), 3),
            "refill_rate": round(float(out[4]), 3),
            "tokens": round(float(out[2]), 3),
            "updated_at": datetime.now(UTC).isoformat(),
            "last_throttled_at": (
                datetime.fromtimestamp(float(last), UTC).isoformat() if last else None
            ),
            "source": out[6],
        }

    def reset(self) -> None:
        """Forget the bucket (it starts full again). For store reconnects and tests."""
        self.client.delete(self.key)
