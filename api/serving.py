"""The gunicorn worker classes the hub runs (``--worker-class api.serving.ApiWorker``).

Both answer gunicorn's own errors (a request line over ``limit_request_line``: 414, a header
too large: 431, a malformed request: 400, ...) as ``application/problem+json`` like every
other error of the API, instead of gunicorn's HTML page. gunicorn still decides which error
it is; only the page it writes is replaced.

- :class:`ApiWorker`: gunicorn's threads worker, for the API (``api.wsgi``).
- ``api.green.StreamWorker``: gunicorn's gevent worker, for the event streams
  (``api.streams_wsgi``), in a module of its own so that only that process imports gevent.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

PROBLEM_TYPE = "application/problem+json"
LINGER_S = 0.5  # at most this long, and this much, read after an error page
LINGER_BYTES = 256 * 1024
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


class _Captured:
    """The client socket as gunicorn's error writer sees it: what it writes is kept, not
    sent; everything else goes to the real socket."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.written = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.written += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def problem_page(status: int) -> bytes:
    """A complete HTTP/1.1 response: the problem for ``status``, connection closed."""
    phrase = HTTPStatus(status).phrase
    body = json.dumps(
        {
            "type": f"https://fusion-stage-hub.dev/problems/{status}",
            "title": phrase,
            "status": status,
            "detail": phrase,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_TYPE}\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ProblemErrors:
    """Mixin for a gunicorn worker: its error pages are problems."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)  # type: ignore[misc]
        found = _STATUS_LINE.match(captured.written)
        status = int(found.group(1)) if found else 500
        if status not in HTTPStatus.__members__.values():
            status = 500
        # A client already gone is no error, as gunicorn's own writer assumes.
        with contextlib.suppress(Exception):
            util.write_nonblock(client, problem_page(status))
            _linger(client)


def _linger(sock: Any) -> None:
    """Stop sending, then read (and drop) what the client still sends, briefly: closing a
    socket with unread input resets the connection, and the reset can overtake the answer
    (a request line too long is only partly read)."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(LINGER_S)
    deadline = time.monotonic() + LINGER_S
    drained = 0
    while drained < LINGER_BYTES and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return
        drained += len(chunk)


class ApiWorker(ProblemErrors, ThreadWorker):
    """gunicorn's ``gthread`` worker with problem+json error pages."""
