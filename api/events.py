"""A server-sent events stream of the org's job and approval changes.

The stream polls Postgres (the truth) for rows updated since the last event. Each event's id
is its position, so a client that reconnects with ``Last-Event-ID`` resumes where it stopped.
The caller's membership is checked again on every poll: a removed member's stream ends.

Streams are served by a process of their own (``api.streams_wsgi``, gevent), and each caller
and each org may hold only so many at once (slots in Redis, ``fusion.ratelimit.slots``; a
crashed process's slots expire with their lease). The API's process serves only the console's
stream (its pages then live on the one origin a person opens), and at most
``API_PROCESS_STREAMS`` at once: each holds one of its request threads.
"""

from __future__ import annotations

import json
import logging
import select as selecting  # the module (gevent patches its select)
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import redis
from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import select

from api import problems
from api.context import Serves, hub
from api.security import access, org_scope
from fusion.approvals.models import Approval
from fusion.auth.access import Principal, authorize
from fusion.auth.models import Role
from fusion.db.session import Database
from fusion.errors import FusionError
from fusion.jobs.models import Job
from fusion.ratelimit import slots

log = logging.getLogger(__name__)
blp = Blueprint("events", __name__, url_prefix="/orgs", description="Live changes.")
POLL_S = 1.0
STREAM_S = 300  # then the client reconnects with Last-Event-ID (re-authenticating)
# Rows are stamped with their transaction's start time, which can be before the commit that
# makes them visible; re-reading a short overlap (deduplicated) catches those late commits.
OVERLAP = timedelta(seconds=5)
# Streams the API's process holds at once (the console's, each on a request thread: half the
# threads of a worker under `fusion up`, fusion.runtime.services.API_THREADS).
API_PROCESS_STREAMS = 2
_api_process = threading.BoundedSemaphore(API_PROCESS_STREAMS)


def _position(value: str | None) -> datetime:
    """Where ``Last-Event-ID`` says to resume; now for anything else. In UTC: Postgres
    refuses offsets beyond 15:59 that Python accepts."""
    if value:
        try:
            stamp = datetime.fromisoformat(value.split("|", 1)[0])
            if stamp.tzinfo is not None:
                return stamp.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    return datetime.now(UTC)


def _changes(
    database: Database, org_id: uuid.UUID, principal: Principal, since: datetime
) -> list[tuple[datetime, str, dict[str, str]]]:
    with database.org_session(org_id) as session:
        authorize(session, principal, org_id, Role.VIEWER)
        jobs = session.execute(
            select(Job.id, Job.job_type, Job.status, Job.store_id, Job.updated_at)
            .where(Job.updated_at > since)
            .order_by(Job.updated_at)
            .limit(500)
        ).all()
        approvals = session.execute(
            select(
                Approval.id,
                Approval.action,
                Approval.status,
                Approval.resource_type,
                Approval.updated_at,
            )
            .where(Approval.updated_at > since)
            .order_by(Approval.updated_at)
            .limit(500)
        ).all()
    events = [
        (
            j.updated_at,
            "job",
            {
                "id": str(j.id),
                "job_type": j.job_type,
                "status": j.status.value,
                "store_id": str(j.store_id) if j.store_id else "",
            },
        )
        for j in jobs
    ] + [
        (
            a.updated_at,
            "approval",
            {
                "id": str(a.id),
                "action": a.action,
                "status": a.status.value,
                "resource_type": a.resource_type,
            },
        )
        for a in approvals
    ]
    return sorted(events, key=lambda e: e[0])


def _client_gone(sock: socket.socket | None) -> Callable[[float], bool]:
    """Wait up to the given seconds; True once the client has closed the connection. A stream's
    client sends nothing after its request, so the socket turning readable means it went:
    noticed at once, not at the second write after it (a slot, and in the API's process a
    request thread, is freed as soon as a page is left). Without the server's socket, sleep."""

    def wait(seconds: float) -> bool:
        if sock is None:
            time.sleep(seconds)
            return False
        try:
            readable, _, _ = selecting.select([sock], [], [], seconds)
        except (OSError, ValueError):  # closed under us, or beyond select's descriptors
            time.sleep(seconds)
            return False
        if not readable:
            return False
        try:
            if sock.recv(1, socket.MSG_PEEK) == b"":
                return True
        except ConnectionError:
            return True
        except (OSError, ValueError):  # nothing to read after all, or a socket that cannot peek
            pass
        time.sleep(seconds)  # readable but not closed: sent something, keep the pace
        return False

    return wait


def _stream(
    database: Database,
    org_id: uuid.UUID,
    principal: Principal,
    start: datetime,
    wait: Callable[[float], bool],
) -> Iterator[str]:
    # Everything is passed in, nothing read from ``g`` or ``current_app``: the generator
    # outlives the request and its contexts.
    cursor = start
    sent: set[tuple[str, str, datetime]] = set()
    deadline = time.monotonic() + STREAM_S
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        try:
            changes = _changes(database, org_id, principal, cursor - OVERLAP)
        except FusionError:
            yield "event: end\ndata: {}\n\n"  # access ended (removed, role changed)
            return
        fresh = [c for c in changes if (c[1], c[2]["id"], c[0]) not in sent]
        for at, kind, data in fresh:
            sent.add((kind, data["id"], at))
            cursor = max(cursor, at)
            body = json.dumps({**data, "updated_at": at.isoformat()})
            yield f"id: {at.isoformat()}\nevent: {kind}\ndata: {body}\n\n"
        sent = {s for s in sent if s[2] > cursor - OVERLAP}
        if not fresh:
            yield ": keep-alive\n\n"
        if wait(POLL_S):
            return


class _Body:
    """A stream's response body: its events, holding the stream's slot (and in the API's
    process its place there) until the server closes the body (WSGI servers close every body,
    even one they never iterated, and also when the client has gone)."""

    def __init__(
        self, events: Iterator[str], slot: slots.Slot | None, place: threading.Semaphore | None
    ) -> None:
        self.events = events
        self.slot = slot
        self.place = place

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> str:
        if self.slot is not None:
            self.slot.renew()
        return next(self.events)

    def close(self) -> None:
        try:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()
        finally:
            try:
                if self.slot is not None:
                    self.slot.release()
            finally:
                if self.place is not None:
                    self.place.release()


def _take_slot(org_id: uuid.UUID, principal: Principal) -> slots.Slot | None:
    """One stream slot for the caller and one for the org (SlotsTaken: a 429). If Redis is
    down the stream is served uncounted, as the request quota is (api/quota.py)."""
    settings = hub().settings
    limits = [
        slots.Limit(
            "caller",
            f"streams:{principal.actor_type.value}:{principal.actor_id}",
            settings.streams_per_principal,
        ),
        slots.Limit("organisation", f"streams:org:{org_id}", settings.streams_per_org),
    ]
    try:
        return slots.take(hub().redis, limits)
    except redis.RedisError:
        log.warning("stream slots unavailable (redis); serving the stream uncounted")
        return None


@blp.get("/<uuid:org_id>/events")
@blp.response(
    200,
    content_type="text/event-stream",
    description="Server-sent events: `job` and `approval` changes.",
)
@blp.alt_response(421, response="MISDIRECTED_REQUEST")
@org_scope(Role.VIEWER)
def events(org_id: uuid.UUID) -> Response:
    """Job and approval changes as they happen (send Last-Event-ID to resume). Each caller
    may hold a few streams at once, each org a few more (then 429)."""
    return stream(org_id, access().principal)


def stream(org_id: uuid.UUID, principal: Principal, *, console: bool = False) -> Response:
    """The event stream of ``org_id`` for ``principal`` (already authorised). The API's
    process answers the API's stream 421, and serves the console's (``console.live``) within
    its cap (then SlotsTaken: a 429)."""
    place = None
    if hub().serves is Serves.API:
        if not console:
            return problems.problem(
                421,
                "Event streams are served by the streams process (FUSION_STREAMS_PORT), not "
                "by the API's: route /orgs/{org_id}/events there.",
            )
        place = _api_process
        if not place.acquire(blocking=False):
            raise slots.SlotsTaken("API process", API_PROCESS_STREAMS)
    try:
        start = _position(request.headers.get("Last-Event-ID"))
        slot = _take_slot(org_id, principal)
    except BaseException:
        if place is not None:
            place.release()
        raise
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    events = _stream(hub().database, org_id, principal, start, _client_gone(sock))
    body = _Body(events, slot, place)
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
