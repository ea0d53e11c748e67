"""Knobs: how badly a sandbox should behave, changed at run time by tests and demos.

Every sandbox owns one :class:`Knobs`. Request threads read it while a test changes it over
``POST /_sandbox/knobs``, so every read-modify-write goes through one lock. The
:class:`TokenBucket` here is the shared refill-and-take arithmetic that the platforms' rate-limit
algorithms (Shopify's cost bucket, Amazon's per-operation buckets, ...) are built from.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from typing import Any

KNOB_NAMES = (
    "latency_ms",
    "error_rate",
    "outage",
    "rate_limit",
    "late_answer_ms",
    "late_answer_method",
    "refuse_skus",
)


class Knobs:
    """Latency, error rate, outage and rate-limit override of one sandbox, plus its counters.

    ``rate_limit`` is ``(refill per second, capacity)`` or None for the platform's default.
    ``late_answer_ms`` delays the answer *after* the request took effect (for requests with
    ``late_answer_method``, or all when that is None): the platform did the work but the
    client times out, which is how a retried create could duplicate a listing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latency_ms: float = 0.0
        self.error_rate: float = 0.0
        self.outage: bool = False
        self.rate_limit: tuple[float, float] | None = None
        self.late_answer_ms: float = 0.0
        self.late_answer_method: str | None = None
        # SKUs a bulk call (Amazon's listings feed) refuses, each with a processing issue.
        self.refuse_skus: frozenset[str] = frozenset()
        self.request_count: int = 0
        self.throttled_count: int = 0
        self.error_count: int = 0

    def update(self, values: Mapping[str, Any]) -> None:
        """Set the knobs named in ``values``; raises ValueError on an unknown name or bad value
        (and then changes nothing)."""
        unknown = set(values) - set(KNOB_NAMES)
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        parsed: dict[str, Any] = {}
        if "latency_ms" in values:
            parsed["latency_ms"] = _non_negative(values["latency_ms"], "latency_ms")
        if "error_rate" in values:
            rate = _non_negative(values["error_rate"], "error_rate")
            if rate > 1:
                raise ValueError("error_rate must be within [0, 1]")
            parsed["error_rate"] = rate
        if "outage" in values:
            if not isinstance(values["outage"], bool):
                raise ValueError("outage must be a boolean")
            parsed["outage"] = values["outage"]
        if "rate_limit" in values:
            parsed["rate_limit"] = _rate_limit(values["rate_limit"])
        if "late_answer_ms" in values:
            parsed["late_answer_ms"] = _non_negative(values["late_answer_ms"], "late_answer_ms")
        if "late_answer_method" in values:
            method = values["late_answer_method"]
            if method is not None and not isinstance(method, str):
                raise ValueError("late_answer_method must be an HTTP method or null")
            parsed["late_answer_method"] = method.upper() if method else None
        if "refuse_skus" in values:
            skus = values["refuse_skus"]
            if not isinstance(skus, list) or not all(isinstance(k, str) for k in skus):
                raise ValueError("refuse_skus must be a list of SKUs")
            parsed["refuse_skus"] = frozenset(skus)
        with self._lock:
            for name, value in parsed.items():
                setattr(self, name, value)

    def reset(self) -> None:
        """Back to a well-behaved platform with zeroed counters."""
        with self._lock:
            self.latency_ms = 0.0
            self.error_rate = 0.0
            self.outage = False
            self.rate_limit = None
            self.late_answer_ms = 0.0
            self.late_answer_method = None
            self.refuse_skus = frozenset()
            self.request_count = 0
            self.throttled_count = 0
            self.error_count = 0

    def late_answer_s(self, method: str) -> float:
        """Seconds to hold back the answer to a ``method`` request that already took effect."""
        with self._lock:
            if self.late_answer_ms <= 0:
                return 0.0
            if self.late_answer_method and self.late_answer_method != method.upper():
                return 0.0
            return self.late_answer_ms / 1000.0

    def note_request(self) -> None:
        with self._lock:
            self.request_count += 1

    def note_throttled(self) -> None:
        with self._lock:
            self.throttled_count += 1

    def roll_error(self) -> bool:
        """True when this request should fail with an injected 500 (counted)."""
        with self._lock:
            failed = self.error_rate > 0 and random.random() < self.error_rate
            if failed:
                self.error_count += 1
            return failed

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "error_rate": self.error_rate,
                "outage": self.outage,
                "rate_limit": list(self.rate_limit) if self.rate_limit else None,
                "late_answer_ms": self.late_answer_ms,
                "late_answer_method": self.late_answer_method,
                "refuse_skus": sorted(self.refuse_skus),
                "request_count": self.request_count,
                "throttled_count": self.throttled_count,
                "error_count": self.error_count,
            }


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _rate_limit(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("rate_limit must be [refill_per_second, capacity] or null")
    refill = _non_negative(value[0], "rate_limit refill")
    capacity = _non_negative(value[1], "rate_limit capacity")
    if capacity <= 0:
        raise ValueError("rate_limit capacity must be positive")
    return (refill, capacity)


class TokenBucket:
    """A thread-safe bucket that refills continuously: ``refill`` tokens per second up to
    ``capacity``. Starts full. ``configure`` changes the shape without losing the level."""

    def __init__(self, refill: float, capacity: float, *, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.refill = refill
        self.capacity = capacity
        self._level = capacity
        self._at = clock()

    def configure(self, refill: float, capacity: float) -> None:
        with self._lock:
            self._advance()
            self.refill = refill
            self.capacity = capacity
            self._level = min(self._level, capacity)

    def _advance(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.refill)
        self._at = now

    def available(self) -> float:
        with self._lock:
            self._advance()
            return self._level

    def take(self, amount: float) -> tuple[bool, float]:
        """Take ``amount`` if the bucket holds it. Returns (taken, level after)."""
        with self._lock:
            self._advance()
            if self._level + 1e-9 < amount:
                return False, self._level
            self._level -= amount
            return True, self._level

    def give(self, amount: float) -> None:
        """Return tokens (a refund of over-reserved cost), never above capacity."""
        with self._lock:
            self._advance()
            self._level = min(self.capacity, self._level + amount)

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` tokens will be there (inf when the bucket never refills)."""
        with self._lock:
            self._advance()
            missing = amount - self._level
            if missing <= 0:
                return 0.0
            return missing / self.refill if self.refill > 0 else float("inf")
