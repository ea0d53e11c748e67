"""Test helpers shared by the sandbox and plugin tests: a webhook receiver on loopback and a
store connection pointed at a running sandbox. Real HTTP only."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from fusion.plugins.base import StoreConnection
from fusion.plugins.http import StoreHttp
from fusion.plugins.registry import get_plugin
from fusion.sandbox.server import QuietRequestHandler
from fusion.security.crypto import Secret
from tests.support.egress import LOOPBACK


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Collects the webhooks a sandbox sends; ``statuses`` are answered in turn (then 200)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"expected {count} deliveries, got {self.received}"
        return self.received


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        receiver.received.append(Received(dict(request.headers), request.get_data()))
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return Response(b"ok", status)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def connection(
    platform: str,
    base_url: str,
    *,
    external_id: str,
    credentials: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
) -> StoreConnection:
    return StoreConnection(
        store_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        platform=platform,
        external_id=external_id,
        base_url=base_url,
        credentials={k: Secret(v) for k, v in credentials.items()},
        settings=dict(settings or {}),
    )


def store_http(conn: StoreConnection, *, read_timeout_s: float = 5.0) -> StoreHttp:
    """The real HTTP helper without a shared bucket (the sandbox's own limits still apply)."""
    return StoreHttp(
        conn,
        spec=get_plugin(conn.platform).rate_limit,
        bucket=None,
        egress=LOOPBACK,
        read_timeout_s=read_timeout_s,
        transport_attempts=1,
    )
