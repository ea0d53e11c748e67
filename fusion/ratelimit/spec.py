"""What a platform allows: a plugin's rate limit, and the call a cost function prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiCall:
    """What a client is about to send, so a plugin's cost function can price it."""

    operation: str  # e.g. "graphql:productCreate", "PATCH /listings/items"
    items: int = 1


@dataclass(frozen=True)
class RateLimitSpec:
    """A plugin's declared allowance: a bucket of ``burst_size`` refilled at
    ``requests_per_second``, each call costing ``cost(call)`` tokens (1 when no cost is given)."""

    requests_per_second: float
    burst_size: int
    cost: Callable[[ApiCall], float] | None = None

    def cost_of(self, call: ApiCall) -> float:
        return self.cost(call) if self.cost else 1.0
