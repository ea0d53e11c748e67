"""The transport under the HTTP helper: connections to vetted addresses only, with an optional
hard deadline and a cap on what is read.

:class:`PinnedAdapter` connects to the address :meth:`EgressPolicy.vet` returned for the
request, never to a fresh lookup of the name (DNS rebinding), while sending the URL's host as
the Host header, as TLS SNI and as the name the certificate must carry. A request that was
not vetted is refused: the helper cannot be bypassed by calling the session directly.

A :class:`Deadline` bounds a whole exchange in wall-clock time, however slowly the other end
trickles bytes (socket timeouts only bound each read): every socket opened while it is
active is watched, and when it expires a timer shuts them down, which ends any read or TLS
handshake blocked on them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from fusion.security.egress import Destination

# The request attribute the helper stores the vetted destination under.
DESTINATION_ATTR = "fusion_destination"
CHUNK_BYTES = 64 * 1024

_watching: ContextVar[Deadline | None] = ContextVar("fusion_http_deadline", default=None)


class Unvetted(RuntimeError):
    """A request reached the transport without an egress check (a programming error)."""


class TooLarge(Exception):
    """The answer is longer than the cap."""


class Deadline:
    """A point in time after which the exchanges it watches are cut off."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._expired or time.monotonic() >= self._at

    def remaining(self) -> float:
        return max(0.0, self._at - time.monotonic())

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Watch the sockets opened by this thread inside the block."""
        token = _watching.set(self)
        try:
            yield
        finally:
            _watching.reset(token)

    def watch(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: TLS wrapping detaches the original socket object,
        # but shutting down either one ends the connection.
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            expired = self._expired
        if expired:
            _shutdown(dup)

    def close(self) -> None:
        """Stop the timer and let go of the watched sockets (call when the work is done)."""
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = _watching.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = _watching.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class PinnedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools are keyed by, and connect to, the vetted address."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host, kwargs = dict(host_params), dict(pool_kwargs)
        destination = _destination(request)
        host["host"] = destination.address
        host["port"] = destination.port
        if destination.scheme == "https":
            kwargs["server_hostname"] = destination.host
            kwargs["assert_hostname"] = destination.host
        return host, kwargs

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        destination = _destination(request)
        request.headers["Host"] = destination.host_header
        # Never through a proxy: the pinned address is the only place the request may go.
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def _destination(request: requests.PreparedRequest) -> Destination:
    destination = getattr(request, DESTINATION_ATTR, None)
    if not isinstance(destination, Destination):
        raise Unvetted("a request reached the transport without an egress check")
    return destination


def read_capped(response: requests.Response, max_bytes: int) -> bytes:
    """The (decoded) body of a streamed ``response``, read in chunks; raises TooLarge as soon
    as it exceeds ``max_bytes`` (the connection is then dropped, the rest never read)."""
    declared = _declared_length(response.headers)
    if declared is not None and declared > max_bytes:
        response.close()
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            response.close()
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _declared_length(headers: Mapping[str, str]) -> int | None:
    if headers.get("Content-Encoding"):
        return None  # the length of the encoded body; the cap applies to what it decodes to
    try:
        return int(headers.get("Content-Length", ""))
    except ValueError:
        return None
