"""A store's memo of platform ids in Redis (``fusion.plugins.base.StoreMemo``).

Why Redis with a time to live, not the store's hub-recorded ``state`` in Postgres: the memo
is a cache of what the platform can always tell again (a lookup away), so durability buys
nothing, while every push reads it. In Redis the read is one ``MGET`` beside the token bucket
the push takes anyway, every worker on every machine shares it, an entry is written or
forgotten on its own (no read-modify-write of a JSON column on the store's row, which the
rate-limit state is already written to), and each entry expires by itself. The expiry bounds
what no answer can reveal: a SKU moved to another variant by hand on the platform, whose old
inventory item still exists. A stale id the platform refuses is forgotten at once and looked
up again by the client (``fusion/plugins/shopify.py``). Keys are the store's id and a digest
of its address, so a store re-pointed at another shop never reads the first shop's ids;
entries of a deleted store expire with their TTL.

A memo that cannot reach Redis answers "nothing remembered" and stores nothing: the push
then looks its ids up, as without a memo.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence

import redis

log = logging.getLogger(__name__)

MEMO_TTL_S = 3600  # an hour: one lookup per SKU and store an hour at most, staleness bounded


class RedisMemo:
    """One store's memo: ``fusion:memo:<store id>:<address digest>:<key>``, each with a TTL."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        store_id: str,
        address: str,
        ttl_s: int = MEMO_TTL_S,
    ) -> None:
        digest = hashlib.sha256(address.encode()).hexdigest()[:12]
        self.client = client
        self.prefix = f"fusion:memo:{store_id}:{digest}:"
        self.ttl_s = ttl_s

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        try:
            values = self.client.mget([self.prefix + k for k in keys])
        except redis.RedisError as exc:
            log.warning("store memo unreadable (%s); looking ids up", type(exc).__name__)
            return {}
        return {
            key: value.decode() if isinstance(value, bytes) else str(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    def put_many(self, values: Mapping[str, str], *, ttl_s: float | None = None) -> None:
        if not values:
            return
        expiry_ms = max(1, math.ceil((self.ttl_s if ttl_s is None else ttl_s) * 1000))
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, value in values.items():
                    pipe.set(self.prefix + key, value, px=expiry_ms)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("store memo not written (%s)", type(exc).__name__)

    def forget(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self.client.delete(*[self.prefix + k for k in keys])
        except redis.RedisError as exc:
            # The entries then expire on their own; until then a refusal forgets them again.
            log.warning("store memo not cleared (%s)", type(exc).__name__)
