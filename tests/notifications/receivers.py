"""Real receivers for the hub's notifications: a threaded HTTP server that checks Standard
Webhooks signatures on its own (not with the hub's code) and answers a scripted status per
path, and an SMTP server (aiosmtpd) that keeps every message it is handed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


def signature_holds(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, written from the spec: HMAC-SHA256 keyed by the base64
    of the part after ``whsec_``, over ``id.timestamp.body``, one ``v1,`` entry matching."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    entries = (headers.get("webhook-signature") or "").split(" ")
    return any(hmac.compare_digest(f"v1,{expected}", entry) for entry in entries)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    signed: bool | None  # None: no secret known for the path

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """``script[path]``: the statuses to answer in turn (then 200); ``secrets[path]``: the
    signing secret requests to that path must carry a valid signature for."""

    script: dict[str, list[int]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    queue = receiver.script.get(self.path, [])
                    status = queue.pop(0) if queue else 200
                    secret = receiver.secrets.get(self.path)
                    signed = signature_holds(secret, headers, body) if secret else None
                    receiver.received.append(
                        Received(self.path, headers, body, time.time(), status, signed)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _Keep:
    def __init__(self, messages: list[tuple[str, list[str], Message]]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
            )
        )
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An SMTP server on a loopback port keeping (sender, recipients, message) of each mail."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.port = free_port()
        self.controller = Controller(_Keep(self.messages), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def to(self, address: str) -> list[Message]:
        return [m for _, rcpt, m in self.messages if address in rcpt]

    def stop(self) -> None:
        self.controller.stop()


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """The first truthy value of ``check()`` within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what or 'condition'}: still {last!r} after {timeout}s")
