"""The HTTP helper against a real loopback server: status mapping, retries, bucket, redaction."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from fusion import telemetry
from fusion.errors import PermanentError, RateLimited, RetryableError
from fusion.plugins.base import StoreConnection
from fusion.plugins.http import StoreHttp, parse_retry_after
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.ratelimit.waits import RATE_LIMIT_SECONDS_KEY, RATE_LIMIT_WAITS_KEY
from fusion.security.crypto import Secret
from tests.support.egress import LOOPBACK

TOKEN = "shpat_canary_http_0123456789"
CALL = ApiCall("GET /thing")


class Platform:
    """A tiny platform: each path answers one way, and it counts what it got."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.flaky_left = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/ok":
            resp = Response(
                json.dumps({"ok": True}),
                headers={"x-limit-per-second": "7", "x-remaining-this-second": "3"},
            )
        elif path == "/throttled":
            resp = Response('{"error":"slow down"}', status=429, headers={"Retry-After": "0.5"})
        elif path == "/broken":
            resp = Response('{"error":"internal"}', status=500)
        elif path == "/flaky":
            if self.flaky_left > 0:
                self.flaky_left -= 1
                resp = Response("unavailable", status=503)
            else:
                resp = Response("{}")
        elif path == "/slow":
            time.sleep(1.0)
            resp = Response("{}")
        elif path == "/echo":
            # a platform that echoes the credential it was sent into its error body
            auth = request.headers.get("Authorization", "")
            resp = Response(json.dumps({"errors": f"bad request for {auth}"}), status=422)
        elif path == "/unauthorized":
            resp = Response('{"errors":"[API] Invalid API key"}', status=401)
        else:
            resp = Response("not found", status=404)
        return resp(environ, start_response)


@pytest.fixture
def platform() -> Iterator[tuple[Platform, str]]:
    app = Platform()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def _http(base_url: str, bucket: TokenBucket | None = None, **kwargs: Any) -> StoreHttp:
    conn = StoreConnection(
        store_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        platform="testplat",
        external_id="shop",
        base_url=base_url,
        credentials={"access_token": Secret(TOKEN)},
        settings={"read_timeout_s": 0.3},
    )
    kwargs.setdefault("transport_backoff_s", 0.01)
    return StoreHttp(conn, spec=RateLimitSpec(10, 10), bucket=bucket, egress=LOOPBACK, **kwargs)


def test_success_feeds_rate_headers_back(
    platform: tuple[Platform, str], redis_client: redis_lib.Redis
) -> None:
    _, url = platform
    bucket = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(10, 10, margin=0.0))
    response = _http(url, bucket).request("GET", "/ok", call=CALL)
    assert response.status == 200 and response.json() == {"ok": True}
    state = bucket.state()
    # Etsy-style QPS headers: a limit of 7 a second becomes a bucket of 7 refilled 7 a second,
    # holding what the platform says remains
    assert state["capacity"] == 7 and state["refill_rate"] == 7
    assert state["tokens"] < 4 and state["source"] == "platform"


def test_429_is_rate_limited_with_retry_after_and_blocks_the_bucket(
    platform: tuple[Platform, str], redis_client: redis_lib.Redis
) -> None:
    app, url = platform
    bucket = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(10, 10, margin=0.0))
    http = _http(url, bucket)
    waits_before = _waits(redis_client)
    with pytest.raises(RateLimited) as caught:
        http.request("GET", "/throttled", call=CALL)
    assert caught.value.retry_after_s == 0.5
    # the next job's first call is refused by the bucket itself: the platform is not asked
    with pytest.raises(RateLimited):
        _http(url, bucket).request("GET", "/ok", call=CALL)
    assert app.hits.get("/ok") is None
    assert bucket.state()["last_throttled_at"] is not None
    # and both waits are counted for /metrics
    assert _waits(redis_client) == (
        waits_before[0] + 2,
        pytest.approx(waits_before[1] + 1.0, abs=0.05),
    )


def _waits(redis_client: redis_lib.Redis) -> tuple[int, float]:
    count = redis_client.hget(RATE_LIMIT_WAITS_KEY, "testplat")
    seconds = redis_client.hget(RATE_LIMIT_SECONDS_KEY, "testplat")
    return int(count or 0), float(seconds or 0)


def test_5xx_is_retryable_4xx_permanent(platform: tuple[Platform, str]) -> None:
    app, url = platform
    http = _http(url)
    with pytest.raises(RetryableError, match="testplat POST /broken answered 500"):
        http.request("POST", "/broken", call=CALL)
    assert app.hits["/broken"] == 1  # a POST is not retried at the transport level
    with pytest.raises(PermanentError, match="refused the store's credentials"):
        http.request("GET", "/unauthorized", call=CALL)
    with pytest.raises(PermanentError, match="answered 404"):
        http.request("GET", "/missing", call=CALL, params={"token": "x"})


def test_idempotent_calls_ride_out_a_short_outage(platform: tuple[Platform, str]) -> None:
    app, url = platform
    app.flaky_left = 2
    response = _http(url).request("GET", "/flaky", call=CALL)
    assert response.status == 200 and app.hits["/flaky"] == 3
    app.flaky_left = 5
    with pytest.raises(RetryableError, match="answered 503"):
        _http(url).request("GET", "/flaky", call=CALL)


def test_timeouts_are_retryable_and_say_so(platform: tuple[Platform, str]) -> None:
    _, url = platform
    with pytest.raises(RetryableError, match="timed out"):
        _http(url, transport_attempts=1).request("GET", "/slow", call=CALL)


def test_errors_never_carry_the_credential_or_the_query(platform: tuple[Platform, str]) -> None:
    _, url = platform
    with pytest.raises(PermanentError) as caught:
        _http(url).request(
            "POST",
            f"/echo?access_token={TOKEN}",
            call=CALL,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    message = str(caught.value)
    assert "answered 422" in message
    assert TOKEN not in message and "access_token=" not in message


def test_a_short_bucket_refuses_before_calling(
    platform: tuple[Platform, str], redis_client: redis_lib.Redis
) -> None:
    app, url = platform
    bucket = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(1, 0.5, margin=0.0))
    _http(url, bucket).request("POST", "/flaky", call=CALL)
    # a new job's first call is rescheduled at once (it holds nothing worth waiting for)
    with pytest.raises(RateLimited) as caught:
        _http(url, bucket).request("POST", "/flaky", call=CALL)
    assert 1.0 < caught.value.retry_after_s <= 2.0
    assert app.hits["/flaky"] == 1


def test_a_job_mid_way_waits_briefly_inline_instead_of_starting_over(
    platform: tuple[Platform, str], redis_client: redis_lib.Redis
) -> None:
    app, url = platform
    bucket = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(1, 4, margin=0.0))
    http = _http(url, bucket)
    http.request("POST", "/flaky", call=CALL)
    started = time.monotonic()
    http.request("POST", "/flaky", call=CALL)  # short by a quarter second: waits, no raise
    assert time.monotonic() - started >= 0.2
    assert app.hits["/flaky"] == 2
    slow = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(1, 0.1, margin=0.0))
    http = _http(url, slow)
    http.request("POST", "/flaky", call=CALL)
    with pytest.raises(RateLimited):  # ten seconds away: rescheduled, not slept through
        http.request("POST", "/flaky", call=CALL)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2.0") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_each_throttled_call_is_counted_for_its_store(
    platform: tuple[Platform, str], redis_client: redis_lib.Redis
) -> None:
    _, url = platform
    previous = telemetry.installed()
    telemetry.install(redis_client)
    try:
        # Given a store whose platform answers 429
        bucket = TokenBucket(redis_client, str(uuid.uuid4()), BucketConfig(10, 10, margin=0.0))
        http = _http(url, bucket)
        # When a call is throttled by the platform, and the next by the store's own bucket
        with pytest.raises(RateLimited):
            http.request("GET", "/throttled", call=CALL)
        other = _http(url, bucket)  # another connection to the same bucket
        with pytest.raises(RateLimited):
            other.request("GET", "/ok", call=CALL)
    finally:
        telemetry.install(previous)
    # Then each counts one throttle (/metrics: fusion_store_throttles_total)
    for throttled in (http, other):
        field = telemetry.field_of([throttled.conn.store_id, "testplat"])
        assert redis_client.hget(telemetry.STORE_THROTTLES.key, field) == b"1"
