"""The event-stream process's gunicorn worker (``--worker-class api.green.StreamWorker``).

gunicorn's gevent worker: a stream waiting for its next poll holds a greenlet, not a thread,
so one process holds hundreds of them. psycopg2 is made to wait cooperatively (the wait
callback psycogreen also installs) so that a poll's query does not block the other streams.
Error pages are problems, as in the API's worker (``api.serving``).
"""

from __future__ import annotations

from typing import Any

import psycopg2
from gevent.socket import wait_read, wait_write
from gunicorn.workers.ggevent import GeventWorker
from psycopg2 import extensions

from api.serving import ProblemErrors


def gevent_wait(conn: Any, timeout: float | None = None) -> None:
    """psycopg2's wait callback under gevent: poll, and let other greenlets run meanwhile."""
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            wait_read(conn.fileno(), timeout=timeout)
        elif state == extensions.POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout)
        else:
            raise psycopg2.OperationalError(f"bad result from poll: {state!r}")


class StreamWorker(ProblemErrors, GeventWorker):
    """gunicorn's ``gevent`` worker with problem+json error pages and green psycopg2."""

    def patch(self) -> None:
        super().patch()
        extensions.set_wait_callback(gevent_wait)
