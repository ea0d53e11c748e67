"""A running hub for front-door tests: the API on a loopback port (its public URL), Celery
worker and beat processes on the named queues, and the named platform sandboxes."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import make_server

from api.app import create_app
from fusion.config import Settings
from fusion.jobs import dispatch
from fusion.sandbox import SandboxServer
from tests.plugins.e2e import sandboxes, worker_env, workers_and_beat


@dataclasses.dataclass
class Stack:
    app: Flask
    url: str
    servers: dict[str, SandboxServer]


@contextmanager
def live_stack(
    hub_env: Mapping[str, str],
    settings: Settings,
    platforms: Iterable[str],
    *,
    concurrency: int = 4,
    **env: str,
) -> Iterator[Stack]:
    """The API, one worker process on every platform queue and ``default``, beat, and the
    sandboxes of ``platforms``; stopped at the end."""
    platforms = tuple(platforms)
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda e, start: holder["app"](e, start), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    previous = dispatch.installed()
    hub_settings = dataclasses.replace(settings, public_url=url, request_quota_per_minute=10**6)
    holder["app"] = create_app(hub_settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    processes_env = worker_env(hub_env, FUSION_PUBLIC_URL=url, **env)
    try:
        with (
            sandboxes(platforms) as servers,
            workers_and_beat(
                processes_env, ",".join([*platforms, "default"]), concurrency=concurrency
            ),
        ):
            yield Stack(holder["app"], url, servers)
    finally:
        server.shutdown()
        server.server_close()
        dispatch.install(previous)
        holder["app"].extensions["fusion"].database.dispose()


def eventually(check: Callable[[], Any], what: str, timeout: float = 45) -> Any:
    """``check()`` once it is truthy; fails naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: still {last!r} after {timeout}s")


def warm_up_amazon(stack: Stack) -> None:
    """Make the Amazon sandbox's first shop (it starts the SQS emulator, slow on a loaded
    machine) before a test's own, so no test's call waits on it."""
    requests.post(
        f"{stack.servers['amazon_sc'].url}/_sandbox/shops",
        json={"shop": "AWARMUP", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
        timeout=120,
    ).raise_for_status()
