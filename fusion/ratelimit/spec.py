"""What a platform allows: a plugin's rate limit, and the call a cost function prices."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiCall:
    """What a client is about to send, so a plugin's cost function can price it."""

    operation: str  # e.g. "graphql:productCreate", "PATCH /listings/items"
    items: int = 1


@dataclass(frozen=True)
class OperationLimit:
    """The allowance of one operation the platform limits on its own (SP-API usage plans)."""

    requests_per_second: float
    burst_size: int


@dataclass(frozen=True)
class RateLimitSpec:
    """A plugin's declared allowance: a bucket of ``burst_size`` refilled at
    ``requests_per_second``, each call costing ``cost(call)`` tokens (1 when no cost is given).

    ``operations`` names the calls (by ``ApiCall.operation``) that the platform limits apart
    from the rest, e.g. Amazon's Orders and Feeds operations: each of them takes one token per
    call from a bucket of its own per store, and nothing from the store's bucket, so the hub
    paces them at the platform's rate and one operation's throttle never stalls the others."""

    requests_per_second: float
    burst_size: int
    cost: Callable[[ApiCall], float] | None = None
    operations: Mapping[str, OperationLimit] = field(default_factory=dict)

    def cost_of(self, call: ApiCall) -> float:
        return self.cost(call) if self.cost else 1.0
