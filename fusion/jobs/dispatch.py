"""The publish port: how ``fusion`` hands a job id to the transport without importing it.

``workers.dispatcher.CeleryDispatcher`` implements :class:`Dispatcher`; every hub process
installs it at start-up (``boot.start``). Enqueue never publishes inside the transaction: it
queues the ids on the session and they are published after the commit (nothing is published
on rollback). A publish that fails after the commit loses nothing: the row is pending, and
the dispatcher sweep publishes it again once its message is stale.

A job due within ``NEAR_S`` (a debounced push, a rate-limited job rescheduled for a moment
later) is published at once too, its due time (``scheduled_at``) as the message's ETA: a
worker holds the message and runs it on time instead of at the next sweep. Its
``dispatched_at`` is that due time, so the sweep takes the message for lost only
``FUSION_DISPATCH_STALE_S`` after the job should have started. Later jobs are published by
the sweep when they fall due (docs/jobs.md, "Delays").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from fusion.jobs.lanes import Lane

log = logging.getLogger(__name__)

_PENDING_KEY = "fusion.jobs.to_publish"
_LABELS_KEY = "fusion.jobs.labels"


class JobLabel(NamedTuple):
    """What a job's message says of it to people (Flower's ``argsrepr``), beside its id: its
    type, org and store. Never a payload value: the message itself still carries ids only."""

    job_type: str
    org_id: uuid.UUID
    store_id: uuid.UUID | None

    def __str__(self) -> str:
        return f"{self.job_type} org={self.org_id} store={self.store_id or '-'}"


Labels = Mapping[uuid.UUID, JobLabel]


# Jobs due within this many seconds are published at once with their due time as the
# message's ETA; later ones wait for the dispatcher sweep. Short enough that the messages
# workers hold (in memory: workers/broker.py) stay few (a rate times this).
NEAR_S = 30.0


def is_near(at: datetime, now: datetime) -> bool:
    """Whether a job due at ``at`` is published now with an ETA (rather than by the sweep)."""
    return at - now <= timedelta(seconds=NEAR_S)


class Dispatcher(Protocol):
    """Publishes messages for (job id, queue) pairs in ``lane``; a message carries ids only
    (``labels``, where known, only describe them to people watching the broker). With ``eta``
    (a job due within ``NEAR_S``) the messages are not run before it."""

    def publish(
        self,
        jobs: Sequence[tuple[uuid.UUID, str]],
        lane: Lane = Lane.NORMAL,
        labels: Labels | None = None,
        *,
        eta: datetime | None = None,
    ) -> None: ...


_dispatcher: Dispatcher | None = None
_LISTENING_KEY = "fusion.jobs.publish_listening"


def install(dispatcher: Dispatcher | None) -> None:
    """Make ``dispatcher`` the one every enqueue publishes through (``None``: publish
    nothing; jobs then wait for the dispatcher sweep)."""
    global _dispatcher
    _dispatcher = dispatcher


def installed() -> Dispatcher | None:
    """The installed dispatcher, if any."""
    return _dispatcher


def publish_now(
    jobs: Sequence[tuple[uuid.UUID, str]],
    lane: Lane = Lane.NORMAL,
    labels: Labels | None = None,
    *,
    eta: datetime | None = None,
) -> bool:
    """Publish ``jobs`` at once (housekeeping, after its own commit), to run from ``eta`` when
    given. Returns False, logging why, if nothing is installed or the transport refused;
    never raises."""
    if not jobs:
        return True
    if _dispatcher is None:
        return False
    try:
        _dispatcher.publish(jobs, lane, labels, eta=eta)
    except Exception as exc:  # the sweep republishes whatever this loses
        log.warning(
            "publishing %d job(s) failed (%s: %s); the dispatcher sweep will retry",
            len(jobs),
            type(exc).__name__,
            exc,
        )
        return False
    return True


def publish_after_commit(
    session: Session,
    jobs: Sequence[tuple[uuid.UUID, str]],
    *,
    lane: Lane = Lane.NORMAL,
    labels: Labels | None = None,
    eta: datetime | None = None,
) -> None:
    """Publish ``jobs`` (to run from ``eta`` when given) once ``session``'s transaction
    commits; drop them if it rolls back."""
    if not jobs:
        return
    if not session.info.get(_LISTENING_KEY):
        # Listeners stay for the session's life; each transaction starts a fresh list.
        session.info[_LISTENING_KEY] = True
        event.listen(session, "after_commit", _flush)
        event.listen(session, "after_rollback", _discard)
    session.info.setdefault(_PENDING_KEY, {}).setdefault((lane, eta), []).extend(jobs)
    session.info.setdefault(_LABELS_KEY, {}).update(labels or {})


def _flush(session: Session) -> None:
    pending: dict[tuple[Lane, datetime | None], list[tuple[uuid.UUID, str]]] = (
        session.info.pop(_PENDING_KEY, None) or {}
    )
    labels: dict[uuid.UUID, JobLabel] = session.info.pop(_LABELS_KEY, None) or {}
    for lane, eta in sorted(pending, key=_due_first):
        jobs = pending[(lane, eta)]
        publish_now(jobs, lane, {i: labels[i] for i, _ in jobs if i in labels}, eta=eta)


def _due_first(key: tuple[Lane, datetime | None]) -> tuple[bool, float, Lane]:
    """Due jobs first, in lane order, then the delayed ones by their ETA."""
    lane, eta = key
    return (eta is not None, eta.timestamp() if eta else 0.0, lane)


def _discard(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_LABELS_KEY, None)
