"""The shared machinery of every platform sandbox: a werkzeug WSGI app with control endpoints,
knob handling, background webhook delivery, and a server that runs it on a loopback port.

A platform sandbox subclasses :class:`SandboxApp`, declares its routes (endpoint names are
method names of the subclass, called as ``handler(request, **url_values)``) and implements the
hooks for its shops, orders, state and error shape. Control endpoints live under
``/_sandbox/`` on every sandbox and are never subject to knobs, auth or rate limits:

- ``GET  /_sandbox/state``  JSON dump of the platform state, knobs, counters and deliveries
- ``POST /_sandbox/knobs``  set knobs, e.g. ``{"latency_ms": 50, "error_rate": 0.1}``
- ``POST /_sandbox/reset``  forget every shop and reset the knobs
- ``POST /_sandbox/shops``  create a shop with its credentials (fields per platform module)
- ``POST /_sandbox/orders`` place an order for a shop; the signed webhook goes out from a
  background thread to the shop's ``webhook_url`` when one is set
- ``POST /_sandbox/listings`` put listings the hub did not make on a shop (the shop named as
  for orders, ``listings: [{title, variants: [{sku, price, quantity, barcode}]}]``)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from fusion.config import sandbox_contracts_dir
from fusion.sandbox.knobs import Knobs

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox/"


def contracts_dir() -> Path:
    """Where the platforms' published contracts are read from at run time (never copied into
    the repository): ``FUSION_CONTRACTS_DIR``, else ``../shared/contracts`` beside the repo."""
    configured = sandbox_contracts_dir()
    if configured is not None:
        return configured
    return Path(__file__).resolve().parents[2].parent / "shared" / "contracts"


class Respond(Exception):
    """Raised from inside a handler to answer with ``response`` at once (auth refusals, 429s)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class SandboxError(Exception):
    """A control request a sandbox refuses (answered 400 with ``{"error": message}``)."""


@dataclass
class Delivery:
    """One webhook delivery attempt series, as ``/_sandbox/state`` reports it."""

    delivery_id: str
    topic: str
    url: str
    status: int | None = None
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "topic": self.topic,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
        }


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=dict(headers or {}), mimetype="application/json"
    )


def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object; raises SandboxError when the body is not one."""
    try:
        data = json.loads(request.get_data() or b"{}")
    except ValueError as exc:
        raise SandboxError(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SandboxError("expected a JSON object")
    return data


class SandboxApp(ABC):
    """One platform's emulator: in-memory shops, knobs, control endpoints, signed webhooks."""

    platform: ClassVar[str]
    # Webhook delivery: attempts and the pause between them (platforms retry for hours; a
    # sandbox compresses that so tests see a retried delivery within a second).
    webhook_attempts: int = 3
    webhook_backoff_s: float = 0.2
    webhook_timeout_s: float = 5.0

    def __init__(self) -> None:
        self.knobs = Knobs()
        self.lock = threading.RLock()
        self.deliveries: list[Delivery] = []
        self._delivery_threads: list[threading.Thread] = []
        self._session = requests.Session()
        control = [
            Rule("/_sandbox/state", methods=["GET"], endpoint="_control_state"),
            Rule("/_sandbox/knobs", methods=["POST"], endpoint="_control_knobs"),
            Rule("/_sandbox/reset", methods=["POST"], endpoint="_control_reset"),
            Rule("/_sandbox/shops", methods=["POST"], endpoint="_control_shops"),
            Rule("/_sandbox/orders", methods=["POST"], endpoint="_control_orders"),
            Rule("/_sandbox/listings", methods=["POST"], endpoint="_control_listings"),
        ]
        self.url_map = Map([*control, *self.routes()], strict_slashes=False)

    # -- what a platform provides -------------------------------------------------------------

    @abstractmethod
    def routes(self) -> Iterable[Rule]:
        """The platform's API routes; each endpoint names a method of this object."""

    @abstractmethod
    def create_shop(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create a shop from a ``/_sandbox/shops`` body; returns its public description.
        Raises SandboxError on missing fields."""

    @abstractmethod
    def place_order(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Place an order from a ``/_sandbox/orders`` body: decrement stock, queue the signed
        webhook with :meth:`deliver`, return the order. Raises SandboxError on bad input."""

    @abstractmethod
    def dump_state(self) -> dict[str, Any]:
        """The platform state (shops and their objects) as JSON-ready data, without secrets."""

    @abstractmethod
    def reset_state(self) -> None:
        """Forget every shop and object."""

    @abstractmethod
    def error_response(self, status: int, message: str) -> Response:
        """An error in the platform's own shape (used for injected errors and outages)."""

    # -- WSGI -----------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    __call__ = wsgi

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        control = request.path.startswith(CONTROL_PREFIX)
        if not control:
            self.knobs.note_request()
            latency = self.knobs.latency_ms
            if latency > 0:
                time.sleep(latency / 1000.0)
            if self.knobs.outage:
                return self.error_response(503, "Service Unavailable")
            if self.knobs.roll_error():
                return self.error_response(500, "Internal Server Error")
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return self.error_response(404, "Not Found")
        except MethodNotAllowed:
            return self.error_response(405, "Method Not Allowed")
        except HTTPException as exc:  # e.g. a redirect for a trailing slash
            return self.error_response(exc.code or 400, exc.description or "Bad Request")
        request.environ["sandbox.endpoint"] = str(endpoint)  # for a sandbox's call counts
        handler = getattr(self, str(endpoint))
        try:
            response: Response = handler(request, **values)
            if not control:
                late = self.knobs.late_answer_s(request.method)
                if late > 0:
                    time.sleep(late)
            return response
        except Respond as answer:
            return answer.response
        except SandboxError as exc:
            return json_response({"error": str(exc)}, 400)
        except Exception:
            log.exception(
                "%s sandbox: unhandled error on %s %s", self.platform, request.method, request.path
            )
            return self.error_response(500, "Internal Server Error")

    # -- control endpoints ----------------------------------------------------------------------

    def _control_state(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "platform": self.platform,
                    "knobs": self.knobs.as_dict(),
                    "state": self.dump_state(),
                    "deliveries": [d.as_dict() for d in self.deliveries],
                }
            )

    def _control_knobs(self, request: Request) -> Response:
        try:
            self.knobs.update(read_json(request))
        except ValueError as exc:
            raise SandboxError(str(exc)) from exc
        return json_response(self.knobs.as_dict())

    def _control_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    def _control_shops(self, request: Request) -> Response:
        data = read_json(request)
        with self.lock:
            return json_response(self.create_shop(data), 201)

    def _control_orders(self, request: Request) -> Response:
        data = read_json(request)
        with self.lock:
            return json_response(self.place_order(data), 201)

    def _control_listings(self, request: Request) -> Response:
        data = read_json(request)
        listings = data.get("listings")
        if not isinstance(listings, list) or not all(isinstance(x, dict) for x in listings):
            raise SandboxError("listings must be a list of {title, variants: [{sku, price, ...}]}")
        with self.lock:
            return json_response({"listings": self.seed_listings(data, listings)}, 201)

    def seed_listings(
        self, data: Mapping[str, Any], listings: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Put ``listings`` on the shop ``data`` names (as in ``/_sandbox/orders``), as the
        merchant made them before the hub: each ``{title, variants: [{sku, price, quantity,
        barcode}]}``. Returns each listing's platform id as ``{"id": ...}``."""
        raise SandboxError(f"the {self.platform} sandbox cannot seed listings")

    def reset(self) -> None:
        """Forget all state, deliveries and knob settings."""
        with self.lock:
            self.reset_state()
            self.deliveries.clear()
        self.knobs.reset()

    # -- webhooks -------------------------------------------------------------------------------

    def deliver(
        self, *, url: str, body: bytes, headers: Mapping[str, str], delivery_id: str, topic: str
    ) -> Delivery:
        """POST ``body`` (already signed into ``headers``) to ``url`` from a background thread,
        retrying non-2xx answers and connection errors ``webhook_attempts`` times. The exact
        bytes signed are the bytes sent."""
        delivery = Delivery(delivery_id=delivery_id, topic=topic, url=url)
        with self.lock:
            self.deliveries.append(delivery)
        thread = threading.Thread(
            target=self._deliver, args=(delivery, body, dict(headers)), daemon=True
        )
        self._delivery_threads.append(thread)
        thread.start()
        return delivery

    def _deliver(self, delivery: Delivery, body: bytes, headers: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json", **headers}
        for attempt in range(1, self.webhook_attempts + 1):
            delivery.attempts = attempt
            try:
                response = self._session.post(
                    delivery.url,
                    data=body,
                    headers=headers,
                    timeout=self.webhook_timeout_s,
                    allow_redirects=False,  # a 3xx is a failed delivery, as platforms treat it
                )
                delivery.status = response.status_code
                delivery.error = None
                if 200 <= response.status_code < 300:
                    return
            except requests.RequestException as exc:
                delivery.error = type(exc).__name__
            time.sleep(self.webhook_backoff_s * attempt)

    def join_deliveries(self, timeout_s: float = 10.0) -> None:
        """Wait for every webhook delivery started so far to finish (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._delivery_threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._delivery_threads = [t for t in self._delivery_threads if t.is_alive()]


class QuietRequestHandler(WSGIRequestHandler):
    """No access log lines: the sandbox is a test double, its callers log what matters."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxServer:
    """Serves one :class:`SandboxApp` on 127.0.0.1 (a free port unless ``port`` is given) from a
    background thread. ``start()`` returns self; ``stop()`` shuts it down; usable as a context
    manager."""

    def __init__(self, app: SandboxApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox server is not running")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> SandboxServer:
        if self._server is not None:
            return self
        self._server = make_server(
            self.host, self.port, self.app.wsgi, threaded=True, request_handler=QuietRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"sandbox-{self.app.platform}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self.app.join_deliveries(timeout_s=2)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
