"""Fault injectors for the end-to-end tests: real network pieces, no mocks.

- :class:`LostAnswerProxy`: a loopback HTTP proxy in front of a sandbox that forwards the first
  *create* call, lets the platform do it, and then holds the answer back until the client
  has timed out: the classic "did my create happen?" case idempotency keys exist for.
- :class:`RedisMonitor`: records every command the Redis server sees (``MONITOR``), so a test
  can read the Celery messages exactly as the broker carried them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "content-encoding"}  # fmt: skip

# What a create call looks like on each platform's wire.
CREATE_CALLS: dict[str, Callable[[str, str, bytes], bool]] = {
    "shopify": lambda m, p, b: m == "POST" and (b"productSet" in b or b"productCreate" in b),
    "etsy": lambda m, p, b: m == "POST" and p.rstrip("/").endswith("/listings"),
    "amazon_sc": lambda m, p, b: m == "PUT" and "/listings/2021-08-01/items/" in p,
    "printify": lambda m, p, b: m == "POST" and p.endswith("/products.json"),
}


@dataclass
class ProxiedSandbox:
    """Looks like a SandboxServer to the harness: everything goes through the proxy."""

    url: str
    app: Any


class LostAnswerProxy:
    def __init__(self, upstream: str, platform: str, *, hold_s: float = 2.5) -> None:
        self.upstream = upstream.rstrip("/")
        self.is_create = CREATE_CALLS[platform]
        self.hold_s = hold_s
        self.lost = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def as_server(self, original: Any) -> Any:
        return ProxiedSandbox(self.url, original.app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        upstream = requests.request(
            request.method,
            self.upstream + request.full_path.rstrip("?"),
            headers={k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS},
            data=body,
            timeout=30,
            allow_redirects=False,
        )
        with self._lock:
            lose = self.lost == 0 and self.is_create(request.method, request.path, body)
            if lose:
                self.lost += 1
        if lose:
            time.sleep(self.hold_s)  # the platform did it; the client never hears so in time
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS]
        return Response(upstream.content, status=upstream.status_code, headers=headers)(
            environ, start_response
        )

    def __enter__(self) -> LostAnswerProxy:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._thread.join(10)


class RedisMonitor:
    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._chunks: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.create_connection(self.address, timeout=5)
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self._chunks.append(data)

    def captured(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def __enter__(self) -> RedisMonitor:
        self._sock.sendall(b"MONITOR\r\n")
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        time.sleep(0.3)  # let the last replies arrive
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
