"""Loopback servers that stand for what a hostile or broken remote does, for the egress tests:
an internal service that must never be reached (it counts every connection), a platform
that trickles its answer for a minute, one that answers far too much, and a proxy in front
of a sandbox that rewrites the URLs the platform hands back. Real sockets; nothing mocked."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "content-encoding"}  # fmt: skip


class _Served:
    """A WSGI app on a loopback port, in a thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._thread.join(5)


class Internal(_Served):
    """A service on the hub's own network: answers a secret to anyone, counts who asked."""

    SECRET = "INTERNAL-SECRET-do-not-leak"

    def __init__(self) -> None:
        self.secret = self.SECRET
        self.hits: list[str] = []
        super().__init__(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.hits.append(f"{request.method} {request.path}")
        return Response(self.secret, status=200)(environ, start_response)


class Trickle:
    """A raw TCP server that answers every request one byte at a time, ``interval_s`` apart,
    for ``for_s`` seconds (or until the client goes away): a status line, then headers that
    never end, or (``in_body``) headers and a body of whitespace that ends, after the
    minute, with ``then`` (so a client that waited it out reads a valid answer)."""

    def __init__(
        self,
        *,
        interval_s: float = 0.05,
        for_s: float = 60.0,
        in_body: bool = False,
        then: bytes = b"[]",
    ):
        self.interval_s = interval_s
        self.for_s = for_s
        self.in_body = in_body
        self.then = then
        self.connections = 0
        self.abandoned = threading.Event()  # the client hung up before the minute was over
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            try:
                client.recv(65536)
                if self.in_body:
                    client.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\n\r\n"
                    )
                    pattern = b" "
                else:
                    client.sendall(b"HTTP/1.1 200 OK\r\n")
                    pattern = b"X-Slow: " + b"a" * 1000
                end = time.monotonic() + self.for_s
                n = 0
                while time.monotonic() < end and not self._stop.is_set():
                    client.sendall(pattern[n % len(pattern) : n % len(pattern) + 1])
                    n += 1
                    time.sleep(self.interval_s)
                if self.in_body:
                    client.sendall(self.then)
            except OSError:
                self.abandoned.set()


class Platform(_Served):
    """A platform whose answer to each path is given by the test: ``routes[path]`` is a
    function of the request returning a werkzeug Response."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[Request], Response]] = {}
        self.seen: list[Request] = []
        super().__init__(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data()
        self.seen.append(request)
        route = self.routes.get(request.path)
        response = route(request) if route else Response("not found", status=404)
        return response(environ, start_response)


class RewritingProxy(_Served):
    """A proxy in front of a sandbox that rewrites what the platform answers: the sandbox's
    own origin becomes the proxy's, ``http://<host>:<port>`` (so the hub keeps talking
    through it), then each rule ``(path_contains, old, new)`` applies to answers for matching
    paths. This is how a test makes "the platform" hand back an absolute URL of its choosing."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[tuple[str, str, str]] = []
        self._http = requests.Session()
        self._http.trust_env = False
        super().__init__(self._app)
        self.origin = f"http://{host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.full_path if request.query_string else request.path
        answer = self._http.request(
            request.method,
            self.upstream + path,
            headers={k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS},
            data=request.get_data(),
            allow_redirects=False,
            timeout=30,
        )
        body = answer.content.replace(self.upstream.encode(), self.origin.encode())
        for contains, old, new in self.rules:
            if contains in request.path:
                body = body.replace(old.encode(), new.encode())
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS]
        return Response(body, status=answer.status_code, headers=headers)(environ, start_response)
