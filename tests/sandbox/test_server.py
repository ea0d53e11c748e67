"""The shared sandbox machinery: control endpoints, knobs, webhook delivery, the server."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
import requests
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from fusion.sandbox import SANDBOXES
from fusion.sandbox.knobs import Knobs, TokenBucket
from fusion.sandbox.server import SandboxApp, SandboxError, SandboxServer, json_response
from tests.sandbox.harness import webhook_receiver


class EchoSandbox(SandboxApp):
    """The smallest platform: one route, shops that are names, orders that send a webhook."""

    platform = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.shops: dict[str, dict[str, Any]] = {}
        self.webhook_backoff_s = 0.01

    def routes(self) -> Iterable[Rule]:
        return [Rule("/things", methods=["GET", "POST"], endpoint="things")]

    def things(self, request: Request) -> Response:
        if request.method == "POST":
            self.shops.setdefault("posted", {"count": 0})["count"] += 1
        return json_response({"things": []})

    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if "shop" not in data:
            raise SandboxError("shop is required")
        self.shops[data["shop"]] = dict(data)
        return {"shop": data["shop"]}

    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        shop = self.shops[data["shop"]]
        self.deliver(
            url=shop["webhook_url"],
            body=b'{"order": 1}',
            headers={"x-sig": "s"},
            delivery_id="d1",
            topic="order",
        )
        return {"order": 1}

    def dump_state(self) -> dict[str, Any]:
        return {"shops": self.shops}

    def reset_state(self) -> None:
        self.shops.clear()

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"oops": message}, status)


@pytest.fixture
def echo() -> Iterator[SandboxServer]:
    with SandboxServer(EchoSandbox()) as server:
        yield server


def test_every_platform_sandbox_is_registered():
    assert {"shopify", "etsy"} <= set(SANDBOXES)
    assert all(SANDBOXES[slug].platform == slug for slug in SANDBOXES)


def test_state_knobs_and_reset(echo):
    requests.post(f"{echo.url}/_sandbox/shops", json={"shop": "a"}, timeout=5).raise_for_status()
    requests.get(f"{echo.url}/things", timeout=5)
    set_knobs = requests.post(
        f"{echo.url}/_sandbox/knobs", json={"latency_ms": 5, "rate_limit": [2, 4]}, timeout=5
    )

    state = requests.get(f"{echo.url}/_sandbox/state", timeout=5).json()

    assert set_knobs.status_code == 200
    assert state["platform"] == "echo"
    assert state["state"] == {"shops": {"a": {"shop": "a"}}}
    assert state["knobs"]["latency_ms"] == 5
    assert state["knobs"]["rate_limit"] == [2, 4]
    assert state["knobs"]["request_count"] == 1  # control calls are not counted
    requests.post(f"{echo.url}/_sandbox/reset", timeout=5).raise_for_status()
    after = requests.get(f"{echo.url}/_sandbox/state", timeout=5).json()
    assert after["state"] == {"shops": {}}
    assert after["knobs"]["latency_ms"] == 0 and after["knobs"]["request_count"] == 0


@pytest.mark.parametrize(
    "body",
    [{"speed": 1}, {"error_rate": 2}, {"latency_ms": -1}, {"outage": "yes"}, {"rate_limit": [1]}],
)
def test_bad_knobs_are_refused_and_change_nothing(echo, body):
    answer = requests.post(f"{echo.url}/_sandbox/knobs", json=body, timeout=5)
    assert answer.status_code == 400
    assert "error" in answer.json()
    assert echo.app.knobs.as_dict()["error_rate"] == 0.0


def test_bad_control_input_is_a_400_not_a_500(echo):
    assert requests.post(f"{echo.url}/_sandbox/shops", data=b"{", timeout=5).status_code == 400
    assert requests.post(f"{echo.url}/_sandbox/shops", json=[], timeout=5).status_code == 400
    assert requests.post(f"{echo.url}/_sandbox/shops", json={}, timeout=5).status_code == 400


def test_outage_and_error_rate_answer_in_the_platform_shape(echo):
    echo.app.knobs.update({"outage": True})
    down = requests.get(f"{echo.url}/things", timeout=5)
    echo.app.knobs.update({"outage": False, "error_rate": 1.0})
    failing = requests.get(f"{echo.url}/things", timeout=5)
    echo.app.knobs.update({"error_rate": 0.0})
    fine = requests.get(f"{echo.url}/things", timeout=5)

    assert (down.status_code, down.json()) == (503, {"oops": "Service Unavailable"})
    assert (failing.status_code, failing.json()) == (500, {"oops": "Internal Server Error"})
    assert fine.status_code == 200
    assert echo.app.knobs.error_count == 1


def test_unknown_paths_and_methods_use_the_platform_error_shape(echo):
    assert requests.get(f"{echo.url}/nope", timeout=5).json() == {"oops": "Not Found"}
    assert requests.delete(f"{echo.url}/things", timeout=5).status_code == 405


def test_latency_delays_before_and_late_answer_after_the_work(echo):
    echo.app.knobs.update({"late_answer_ms": 400, "late_answer_method": "POST"})
    with pytest.raises(requests.Timeout):
        requests.post(f"{echo.url}/things", timeout=0.15)
    assert echo.app.shops["posted"]["count"] == 1  # done, although the answer never arrived
    started = time.monotonic()
    requests.get(f"{echo.url}/things", timeout=5)  # other methods are not held back
    assert time.monotonic() - started < 0.4


def test_webhooks_are_retried_until_accepted(echo):
    with webhook_receiver() as receiver:
        receiver.statuses = [500, 302]
        requests.post(
            f"{echo.url}/_sandbox/shops", json={"shop": "a", "webhook_url": receiver.url}, timeout=5
        ).raise_for_status()
        requests.post(f"{echo.url}/_sandbox/orders", json={"shop": "a"}, timeout=5)
        deliveries = receiver.wait_for(3)
        echo.app.join_deliveries()

    assert [d.body for d in deliveries] == [b'{"order": 1}'] * 3
    assert deliveries[0].headers["X-Sig"] == "s"
    [record] = requests.get(f"{echo.url}/_sandbox/state", timeout=5).json()["deliveries"]
    assert (record["status"], record["attempts"]) == (200, 3)


def test_server_stops_and_frees_its_port():
    server = SandboxServer(EchoSandbox()).start()
    url = server.url
    assert requests.get(f"{url}/things", timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/things", timeout=1)
    with pytest.raises(RuntimeError):
        _ = server.url


def test_token_bucket_refills_and_refuses():
    now = [0.0]
    bucket = TokenBucket(10, 20, clock=lambda: now[0])
    assert bucket.take(15) == (True, 5)
    assert bucket.take(10) == (False, 5)
    assert bucket.wait_s(10) == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take(10) == (True, 0)
    now[0] = 100
    assert bucket.available() == 20  # never above capacity
    bucket.configure(1, 4)
    assert bucket.available() == 4


def test_knobs_start_well_behaved():
    knobs = Knobs()
    assert not knobs.roll_error()
    assert knobs.as_dict()["outage"] is False
