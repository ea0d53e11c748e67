"""The shared token bucket: atomic across processes, corrected by the platform."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import redis as redis_lib

from fusion.errors import ValidationFailed
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.ratelimit.spec import RateLimitSpec

SPEC = RateLimitSpec(requests_per_second=2.0, burst_size=4)


def _bucket(client: redis_lib.Redis, *, capacity: float = 4, rate: float = 2) -> TokenBucket:
    return TokenBucket(client, str(uuid.uuid4()), BucketConfig(capacity, rate, margin=0.0))


def test_burst_then_wait_for_refill(redis_client: redis_lib.Redis) -> None:
    bucket = _bucket(redis_client)
    grants = [bucket.take(1) for _ in range(5)]
    assert [g.granted for g in grants] == [True, True, True, True, False]
    # one token short at 2/s: about half a second, never more
    assert 0 < grants[-1].wait_s <= 0.5


def test_a_short_take_takes_nothing(redis_client: redis_lib.Redis) -> None:
    bucket = _bucket(redis_client, capacity=3, rate=0.01)
    assert bucket.take(2).granted
    assert not bucket.take(2).granted
    assert bucket.take(1).granted  # the failed take of 2 left the last token in place


def test_retry_after_blocks_and_records_the_throttle(redis_client: redis_lib.Redis) -> None:
    bucket = _bucket(redis_client, capacity=10, rate=100)
    bucket.feedback(retry_after_s=0.3)
    grant = bucket.take(1)
    assert not grant.granted and 0.2 < grant.wait_s <= 0.3
    state = bucket.state()
    assert state["last_throttled_at"] is not None and state["source"] == "platform"
    time.sleep(0.35)
    assert bucket.take(1).granted


def test_platform_limits_replace_plugin_defaults_but_not_a_lower_store_override(
    redis_client: redis_lib.Redis,
) -> None:
    plain = _bucket(redis_client, capacity=4, rate=2)
    plain.feedback(capacity=40, refill_rate=20, available=30)
    state = plain.state()
    assert (state["capacity"], state["refill_rate"]) == (40, 20)
    assert state["tokens"] <= 30.5  # lowered to what the platform said was left

    store = TokenBucket(
        redis_client, str(uuid.uuid4()), BucketConfig(4, 2, overridden=True, margin=0.0)
    )
    store.feedback(capacity=40, refill_rate=20)
    assert (store.state()["capacity"], store.state()["refill_rate"]) == (4, 2)


def test_store_config_overrides_and_validates() -> None:
    config = BucketConfig.resolve(SPEC, {"requests_per_second": 5, "burst_size": 10})
    assert (config.capacity, config.refill_rate, config.overridden) == (10, 5, True)
    assert BucketConfig.resolve(SPEC, {}) == BucketConfig(4, 2, False)
    with pytest.raises(ValidationFailed) as caught:
        BucketConfig.resolve(SPEC, {"burst_size": -1, "safety_margin": 2})
    assert set(caught.value.fields) == {"burst_size", "safety_margin"}


def _hammer(url: str, store_id: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    client = redis_lib.Redis.from_url(url)
    bucket = TokenBucket(client, store_id, BucketConfig(5, 10, margin=0.0))
    granted = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bucket.take(1).granted:
            granted += 1
    out.put(granted)


def test_four_processes_share_one_bucket_exactly(redis_client: redis_lib.Redis) -> None:
    # given a bucket of 5 refilling 10/s shared by four busy processes
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    store_id = str(uuid.uuid4())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, store_id, 1.0, out)) for _ in range(4)]
    start = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    elapsed = time.monotonic() - start
    total = sum(out.get(timeout=5) for _ in procs)
    # then together they got no more than the burst plus the refill over the whole run
    assert 5 <= total <= 5 + 10 * elapsed + 1


def test_refused_callers_get_staggered_slots(redis_client: redis_lib.Redis) -> None:
    # given an empty bucket refilling 10 tokens a second
    bucket = _bucket(redis_client, capacity=1, rate=10)
    assert bucket.take(1).granted
    # when three callers are refused, each is told to come back a token's time after the last
    waits, clock = [], [time.monotonic()]
    for _ in range(3):
        waits.append(bucket.take(1).wait_s)
        clock.append(time.monotonic())
    assert waits[0] <= 0.1
    # (each wait counts from the moment Redis ran that call, which came later than the one
    # before by at most the time between them seen here: on a busy machine, more than nothing)
    for i in (0, 1):
        between = clock[i + 2] - clock[i]
        assert waits[i] + 0.1 - between - 0.005 <= waits[i + 1] <= waits[i] + 0.1 + 0.005, (
            waits,
            between,
        )
    # and one that will wait inline is told the bare wait, taking no place in line
    assert bucket.take(1, queue=False).wait_s <= 0.1
