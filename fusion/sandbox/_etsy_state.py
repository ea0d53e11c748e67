"""State of the Etsy sandbox: a shop with its listings, inventories and receipts, the day
window of the rate limit, and Etsy's money shape.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class DayWindow:
    """Fixed-window counter for the day quota."""

    def __init__(self, length_s: float) -> None:
        self.length_s = length_s
        self.started = time.monotonic()
        self.used = 0

    def roll(self) -> None:
        now = time.monotonic()
        if now - self.started >= self.length_s:
            self.started, self.used = now, 0

    def reset_in(self) -> float:
        return max(0.0, self.length_s - (time.monotonic() - self.started))


@dataclass
class Shop:
    shop_id: int
    user_id: int
    keystring: str
    shared_secret: str
    access_token: str
    webhook_secret: str
    webhook_url: str | None
    # OAuth: the refresh token (None once revoked), the access token's lifetime and expiry
    # (monotonic seconds), and how many token pairs the refresh endpoint has issued.
    refresh_token: str | None = None
    token_ttl_s: float = 3600.0
    token_expires_at: float = field(default_factory=lambda: time.monotonic() + 3600.0)
    tokens_issued: int = 0
    listings: dict[int, dict[str, Any]] = field(default_factory=dict)
    inventories: dict[int, dict[str, Any]] = field(default_factory=dict)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    # listing id -> its images by rank (_etsy_images), each with the sha256 of its bytes
    images: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # Etsy operation id -> the API calls the shop's owner made of it (``calls`` in the state)
    calls: Counter[str] = field(default_factory=Counter)


def money(amount: float, currency: str = "USD") -> dict[str, Any]:
    return {"amount": round(amount * 100), "divisor": 100, "currency_code": currency}
