"""Enqueue, cancel, re-run and read jobs, inside the caller's org-scoped transaction.

The caller owns the transaction (``database.org_session(org_id)``): nothing here commits.
Messages for new or re-run jobs are published only after that commit, through the installed
dispatcher (see :mod:`fusion.jobs.dispatch`); a rollback publishes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, column, select, text
from sqlalchemy.orm import Session

from fusion.config import Settings
from fusion.db.prepared import Prepared, prepare
from fusion.errors import Conflict, NotFound, UnsupportedCapability, ValidationFailed
from fusion.jobs import dispatch, lanes, registry
from fusion.jobs import log as joblog
from fusion.jobs.models import Job, JobLog, JobStatus, LogLevel
from fusion.jobs.queues import DEFAULT_QUEUE, queue_for
from fusion.plugins.base import Capability
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin
from fusion.stores.models import Store

MAX_BULK = 10_000


@dataclass(frozen=True)
class JobSpec:
    """One job for :func:`enqueue_many`."""

    job_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    store_id: uuid.UUID | None = None
    priority: int | None = None
    scheduled_at: datetime | None = None
    idempotency_key: str | None = None
    created_by: uuid.UUID | None = None
    max_attempts: int | None = None
    # Lines for the new job's log after "enqueued" (e.g. what a client's request was
    # clamped to); nothing is written when an idempotency key returns an existing job.
    notes: Sequence[str] = ()


def enqueue(
    session: Session,
    *,
    org_id: uuid.UUID,
    job_type: str,
    payload: Mapping[str, Any] | None = None,
    store_id: uuid.UUID | None = None,
    priority: int | None = None,
    scheduled_at: datetime | None = None,
    idempotency_key: str | None = None,
    created_by: uuid.UUID | None = None,
    max_attempts: int | None = None,
    settings: Settings | None = None,
    notes: Sequence[str] = (),
) -> Job:
    """Add a pending job to the caller's transaction and publish it after the commit.

    ``max_attempts`` defaults to the job type's, else to ``settings.max_attempts``
    (``FUSION_MAX_ATTEMPTS``), else (no settings handed in) to its built-in default.

    Raises ValidationFailed (with field errors) for an unknown job type, a payload that fails
    its schema, a missing store the type needs, or bad numbers; NotFound if ``store_id`` is
    not a store of this org; UnsupportedCapability if the store's plugin cannot do the job.
    Nothing is stored when it raises. The same ``idempotency_key`` (per org) returns the first
    job and stores nothing new. A job scheduled in the future is published when it is due
    (one due within ``dispatch.NEAR_S`` at once, its message held by a worker until then).
    """
    spec = JobSpec(
        job_type=job_type,
        payload=payload or {},
        store_id=store_id,
        priority=priority,
        scheduled_at=scheduled_at,
        idempotency_key=idempotency_key,
        created_by=created_by,
        max_attempts=max_attempts,
        notes=tuple(notes),
    )
    return enqueue_many(session, org_id=org_id, specs=[spec], settings=settings)[0]


# Serialises coalescing per (store, job type) so two concurrent changes never both miss the
# pending job and make two.
COALESCE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
# A pending job of the type on the store, due soon (not one waiting out a retry backoff),
# locked unless a worker is claiming it right now; its ``skus`` become the union.
JOIN_PENDING = text(
    """
    UPDATE jobs SET payload = jsonb_set(payload, '{skus}', (
            SELECT to_jsonb(array_agg(DISTINCT sku ORDER BY sku)) FROM (
                SELECT jsonb_array_elements_text(payload -> 'skus') AS sku
                UNION SELECT unnest(CAST(:skus AS text[]))
            ) AS merged)),
        updated_at = now()
    WHERE id = (
        SELECT id FROM jobs
        WHERE store_id = :store AND job_type = :job_type AND status = 'pending'
          AND jsonb_typeof(payload -> 'skus') = 'array'
          AND jsonb_array_length(payload -> 'skus') + :count <= :max
          AND scheduled_at <= now() + make_interval(secs => :horizon)
        ORDER BY scheduled_at LIMIT 1
        FOR UPDATE SKIP LOCKED)
      AND status = 'pending'
    RETURNING id
    """
)
MAX_COALESCED_SKUS = 10_000
JOIN_HORIZON_S = 30.0


def enqueue_or_join(
    session: Session,
    *,
    org_id: uuid.UUID,
    job_type: str,
    store_id: uuid.UUID,
    skus: Sequence[str],
    delay_s: float = 0.0,
) -> Job:
    """A job of ``job_type`` on ``store_id`` that covers ``skus``: the store's pending one of
    that type, with ``skus`` added to its payload's ``skus`` (and a line in its log), or else
    a new one due in ``delay_s`` (the window in which further changes join it). In the
    caller's transaction. Raises as :func:`enqueue` for a new job."""
    wanted = sorted(set(skus))
    session.execute(COALESCE_LOCK, {"key": f"coalesce:{job_type}:{store_id}"})
    joined = session.execute(
        JOIN_PENDING,
        {
            "store": store_id,
            "job_type": job_type,
            "skus": wanted,
            "count": len(wanted),
            "max": MAX_COALESCED_SKUS,
            "horizon": JOIN_HORIZON_S + delay_s,
        },
    ).scalar_one_or_none()
    if joined is not None:
        joblog.write(
            session, org_id, joined, f"{len(wanted)} SKUs joined this pending job",
            LogLevel.INFO, {"skus": wanted[:50]},
        )  # fmt: skip
        job = session.get(Job, joined, populate_existing=True)
        assert job is not None  # just updated, in this transaction
        return job
    scheduled_at = datetime.now(UTC) + timedelta(seconds=delay_s) if delay_s > 0 else None
    return enqueue(
        session,
        org_id=org_id,
        job_type=job_type,
        store_id=store_id,
        payload={"skus": wanted},
        scheduled_at=scheduled_at,
    )


def enqueue_requested(
    session: Session,
    *,
    org_id: uuid.UUID,
    job_type: str,
    payload: Mapping[str, Any] | None = None,
    store_id: uuid.UUID | None = None,
    **spec: Any,
) -> Job:
    """:func:`enqueue` for a job a client asks for by type (the jobs API), after the type's
    rules for clients (``JobType.admit``: e.g. a reconciliation's ``since`` clamped to the
    store's connection, each change noted in the job's log).

    Raises ValidationFailed naming ``job_type`` for a type only the hub enqueues (its
    ``internal`` says what to do instead: a listing change goes through the listing
    endpoints, where approval policies apply), naming ``payload.<field>`` for a field only
    the hub may set (exact stock quantities), else as :func:`enqueue`."""
    try:
        kind: registry.JobType | None = registry.get(job_type)
    except registry.UnknownJobType:
        kind = None  # enqueue names the unknown type
    if kind is not None and kind.internal:
        raise ValidationFailed(
            fields={"job_type": [f"{job_type} is not enqueued directly: {kind.internal}"]}
        )
    notes: tuple[str, ...] = ()
    if kind is not None and kind.admit is not None:
        admitted = kind.admit(session, store_id, _validated(kind, payload or {}, ""))
        payload, notes = admitted.payload, admitted.notes
    return enqueue(
        session,
        org_id=org_id,
        job_type=job_type,
        payload=payload,
        store_id=store_id,
        notes=notes,
        **spec,
    )


def enqueue_many(
    session: Session,
    *,
    org_id: uuid.UUID,
    specs: Sequence[JobSpec | Mapping[str, Any]],
    settings: Settings | None = None,
) -> list[Job]:
    """Enqueue every spec with one INSERT; returns the jobs in the order of ``specs``.

    Each spec is checked as :func:`enqueue` checks one (``settings`` as there), and the first
    bad spec raises (ValidationFailed names it as ``specs.<i>.<field>``) before anything is
    stored. A spec whose idempotency key already has a job gets that job back. More than
    10,000 specs raise ValidationFailed (split the batch).
    """
    items = [s if isinstance(s, JobSpec) else JobSpec(**s) for s in specs]
    if not items:
        return []
    if len(items) > MAX_BULK:
        raise ValidationFailed(fields={"specs": [f"at most {MAX_BULK} jobs per call"]})
    store_ids = {s.store_id for s in items if s.store_id is not None}
    stores, remembered = _stores(session, org_id, store_ids)
    now = datetime.now(UTC)
    publishing = dispatch.installed() is not None
    default_attempts = settings.max_attempts if settings else Settings.max_attempts
    rows: list[dict[str, Any]] = []
    for i, spec in enumerate(items):
        prefix = "" if len(items) == 1 else f"specs.{i}."
        rows.append(_row(spec, org_id, stores, now, publishing, prefix, default_attempts))
    keyed = [r for r in rows if r["idempotency_key"] is not None]
    keys = {r["idempotency_key"] for r in keyed}
    if len(keys) != len(keyed):
        raise ValidationFailed(fields={"idempotency_key": ["repeated within one batch"]})
    entries = [
        {"job_id": r["id"], "message": m, "data": d, "n": n}
        for n, (r, m, d) in enumerate(_enqueue_lines(rows, items, now))
    ]
    # One round trip: the rows and their log lines go as two JSON parameters of one prebuilt
    # statement (compiled once per process), which inserts the jobs if every store of the
    # batch is there (as this org sees them; nothing otherwise), logs the ones inserted
    # (not those an idempotency key already had), counts the org's backlog on their queues
    # where a lane needs it, and returns the jobs whole with that count.
    session.flush()  # the ORM's pending changes first, as joblog.write does
    result = session.execute(
        (_INSERT_KEYED if keyed else _INSERT).on(session),
        {
            "rows": _json([{k: r[k] for k in _COLUMNS} for r in rows]),
            "entries": _json(entries),
            "count_backlog": publishing and len(rows) < lanes.BULK_BACKLOG,
        },
    ).all()
    if not result and remembered:
        # Nothing inserted: every spec's key had its job, or a store remembered by
        # _PLATFORM_OF is gone (the statement inserts nothing then): read them to know.
        _stores(session, org_id, store_ids, fresh=True)
    returned = {job.id: job for job, _ in result}
    waiting = {job.queue: n for job, n in result if n is not None}
    inserted = set(returned)
    new_rows = [r for r in rows if r["id"] in inserted]
    ids = [r["id"] for r in rows]
    if keys - {r["idempotency_key"] for r in new_rows}:
        # A key already used: the first job stands in for this spec.
        existing = dict(
            session.execute(
                select(Job.idempotency_key, Job.id).where(
                    Job.org_id == org_id, Job.idempotency_key.in_(keys)
                )
            ).all()
        )
        ids = [existing[r["idempotency_key"]] if r["id"] not in inserted else r["id"] for r in rows]
    jobs = dict(returned)
    if missing := set(ids) - inserted:  # jobs an idempotency key already had
        jobs.update({j.id: j for j in session.scalars(select(Job).where(Job.id.in_(missing)))})
    backlog = _backlogs(waiting, new_rows, len(rows))
    _publish(session, org_id, [r for r in new_rows if r["dispatched_at"] is not None], backlog, now)
    return [jobs[i] for i in ids]


# What enqueue_many sends of each row (the rest are the columns' defaults).
_COLUMNS = {
    "id": "uuid", "org_id": "uuid", "store_id": "uuid", "job_type": "text", "queue": "text",
    "priority": "smallint", "payload": "jsonb", "max_attempts": "integer",
    "scheduled_at": "timestamptz", "dispatched_at": "timestamptz", "idempotency_key": "text",
    "created_by": "uuid",
}  # fmt: skip
# A store that is gone (or not this org's, by RLS) inserts none of the batch: _stores may
# have answered from memory. The log lines follow their jobs' rows (an inserted job's
# only): clock_timestamp() is evaluated after the ORDER BY, so the lines keep their order.
# ``waiting`` counts, once per queue that has a job of priority 0 (the only ones whose lane
# depends on it; none when ``count_backlog`` is false), the org's pending jobs there up to the
# bulk threshold: it reads the snapshot before the insert, so the batch's own jobs are added
# by _backlogs.
_INSERT_SQL = """
WITH ins AS (
    INSERT INTO jobs ({columns})
    SELECT {columns} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({typed})
     WHERE NOT EXISTS (
           SELECT 1 FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS m(store_id uuid)
            WHERE m.store_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM stores s WHERE s.id = m.store_id))
    {conflict}
    RETURNING {returned}
), logged AS (
    INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
    SELECT gen_random_uuid(), ins.org_id, ins.id, 'info', e.message, COALESCE(e.data, '{{}}'),
           clock_timestamp(), clock_timestamp()
      FROM jsonb_to_recordset(CAST(:entries AS jsonb)) AS e(job_id uuid, message text,
                                                            data jsonb, n integer)
      JOIN ins ON ins.id = e.job_id
     ORDER BY e.n
), waiting AS (
    SELECT q.queue, (SELECT count(*) FROM (
               SELECT 1 FROM jobs j
                WHERE j.org_id = q.org_id AND j.queue = q.queue AND j.status = 'pending'
                LIMIT {cap}) AS pending) AS n
      FROM (SELECT DISTINCT r.org_id, r.queue
              FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(org_id uuid, queue text,
                                                                  priority smallint)
             WHERE r.priority = 0 AND CAST(:count_backlog AS boolean)) AS q
)
SELECT {returned_ins}, waiting.n AS waiting FROM ins LEFT JOIN waiting ON waiting.queue = ins.queue
"""


def _insert(conflict: str = "") -> Prepared:
    # Prepared (fusion.db.prepared): its columns by name, so that a column added to jobs
    # later does not change what the prepared statement returns.
    returned = [c.name for c in Job.__table__.columns]
    sql = _INSERT_SQL.format(
        columns=", ".join(_COLUMNS),
        typed=", ".join(f"{c} {t}" for c, t in _COLUMNS.items()),
        conflict=conflict,
        cap=lanes.BULK_BACKLOG,
        returned=", ".join(returned),
        returned_ins=", ".join(f"ins.{c}" for c in returned),
    )
    waiting = column("waiting", Integer)
    return prepare(text(sql), Job, waiting)


_INSERT = _insert()
_INSERT_KEYED = _insert(
    "ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> str:
    """The JSON of a row's ids and times (text); anything else is not JSON (payloads are)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _enqueue_lines(
    rows: Sequence[Mapping[str, Any]], specs: Sequence[JobSpec], now: datetime
) -> Iterable[tuple[Mapping[str, Any], str, dict[str, Any] | None]]:
    """Each new job's log lines: "enqueued ..." with its state, then its spec's notes."""
    for r, spec in zip(rows, specs, strict=True):
        yield r, _enqueued_message(r, now), {"status": JobStatus.PENDING.value, "queue": r["queue"]}
        for note in spec.notes:
            yield r, note, None


def cancel(session: Session, job_id: uuid.UUID) -> Job:
    """Cancel a job: a pending or claimed one at once (it will never run); a running one is
    asked to stop and stops at its next checkpoint. Raises NotFound for a job not in this org,
    Conflict for a job already completed, failed or cancelled."""
    job = _locked(session, job_id)
    if job.status in (JobStatus.PENDING, JobStatus.CLAIMED):
        job.status = JobStatus.CANCELLED
        # Python clock, not now(): the returned object stays fully loaded after commit.
        job.finished_at = datetime.now(UTC)
        job.locked_by = None
        job.lease_expires_at = None
        joblog.write(
            session, job.org_id, job.id, "cancelled before it ran", data={"status": "cancelled"}
        )
    elif job.status == JobStatus.RUNNING:
        if not job.cancel_requested:
            job.cancel_requested = True
            joblog.write(
                session,
                job.org_id,
                job.id,
                "cancel requested; the job stops at its next checkpoint",
                data={"cancel_requested": True},
            )
    else:
        raise Conflict(f"job {job_id} is already {job.status.value}")
    session.flush()
    return job


def rerun(session: Session, job_id: uuid.UUID) -> Job:
    """Run a failed or cancelled job again from scratch: back to pending, attempts reset, its
    last error kept for the record until the new run overwrites it. Raises NotFound for a job
    not in this org, Conflict for a job in any other state."""
    job = _locked(session, job_id)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"only failed or cancelled jobs can be re-run; job is {job.status.value}")
    was = job.status.value
    publishing = dispatch.installed() is not None
    job.status = JobStatus.PENDING
    job.attempts = 0
    now = datetime.now(UTC)
    job.scheduled_at = now
    job.finished_at = None
    job.result = None
    job.progress = None
    job.cancel_requested = False
    job.dispatched_at = now if publishing else None
    joblog.write(
        session, job.org_id, job.id, f"re-run requested (was {was})", data={"status": "pending"}
    )
    session.flush()
    if publishing:
        label = dispatch.JobLabel(job.job_type, job.org_id, job.store_id)
        dispatch.publish_after_commit(session, [(job.id, job.queue)], labels={job.id: label})
    return job


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    """The job ``job_id`` of the session's org; raises NotFound otherwise."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def job_logs(session: Session, job_id: uuid.UUID, *, limit: int = 500) -> list[JobLog]:
    """The job's log, oldest first; raises NotFound for a job not in this org."""
    get_job(session, job_id)
    return joblog.entries(session, job_id, limit=limit)


def _locked(session: Session, job_id: uuid.UUID) -> Job:
    job = session.scalars(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _stores(
    session: Session, org_id: uuid.UUID, ids: Iterable[uuid.UUID], *, fresh: bool = False
) -> tuple[dict[uuid.UUID, str], bool]:
    """The platform of each store of ``ids``, and whether any came from ``_PLATFORM_OF``
    (``fresh``: none; every one read). Raises NotFound for a store this org does not see."""
    ids = set(ids)
    found = {} if fresh else {i: p for i in ids if (p := _PLATFORM_OF.get((org_id, i)))}
    unread = ids - set(found)
    if unread:
        read = dict(session.execute(_PLATFORMS, {"ids": list(unread)}).all())
        if missing := unread - set(read):
            for store_id in missing:
                _PLATFORM_OF.pop((org_id, store_id), None)
            raise NotFound(f"no store {sorted(map(str, missing))[0]} in this organisation")
        if len(_PLATFORM_OF) + len(read) > PLATFORMS_KEPT:
            _PLATFORM_OF.clear()
        _PLATFORM_OF.update({(org_id, i): p for i, p in read.items()})
        found.update(read)
    return found, len(found) > len(unread)


def _row(
    spec: JobSpec,
    org_id: uuid.UUID,
    stores: Mapping[uuid.UUID, str],
    now: datetime,
    publishing: bool,
    prefix: str,
    default_attempts: int,
) -> dict[str, Any]:
    try:
        job_type = registry.get(spec.job_type)
    except registry.UnknownJobType as exc:
        raise ValidationFailed(fields={f"{prefix}job_type": [str(exc)]}) from None
    payload = _validated(job_type, spec.payload, prefix)
    platform = stores.get(spec.store_id) if spec.store_id is not None else None
    if job_type.needs_store and spec.store_id is None:
        raise ValidationFailed(fields={f"{prefix}store_id": [f"{job_type.name} needs a store"]})
    if job_type.capability and platform is not None:
        _check_capability(platform, job_type.capability)
    priority = job_type.priority if spec.priority is None else spec.priority
    if not -100 <= priority <= 100:
        raise ValidationFailed(fields={f"{prefix}priority": ["must be between -100 and 100"]})
    attempts = spec.max_attempts or job_type.max_attempts or default_attempts
    if not 1 <= attempts <= 100:
        raise ValidationFailed(fields={f"{prefix}max_attempts": ["must be between 1 and 100"]})
    if spec.idempotency_key is not None and not 1 <= len(spec.idempotency_key) <= 255:
        raise ValidationFailed(fields={f"{prefix}idempotency_key": ["1 to 255 characters"]})
    if spec.scheduled_at is not None and spec.scheduled_at.tzinfo is None:
        raise ValidationFailed(fields={f"{prefix}scheduled_at": ["needs a time zone"]})
    due = spec.scheduled_at is None or spec.scheduled_at <= now
    near = spec.scheduled_at is None or dispatch.is_near(spec.scheduled_at, now)
    return {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "store_id": spec.store_id,
        "job_type": job_type.name,
        "queue": queue_for(platform) if platform else DEFAULT_QUEUE,
        "status": JobStatus.PENDING,
        "priority": priority,
        "payload": payload,
        "attempts": 0,
        "max_attempts": attempts,
        "scheduled_at": spec.scheduled_at or now,
        # Due and near jobs are published now (a near one with its due time as the ETA, and
        # counted as sent then); later ones wait for the dispatcher sweep.
        "dispatched_at": (now if due else spec.scheduled_at) if (near and publishing) else None,
        "idempotency_key": spec.idempotency_key,
        "created_by": spec.created_by,
    }


def _validated(
    job_type: registry.JobType, payload: Mapping[str, Any], prefix: str
) -> dict[str, Any]:
    """The cleaned payload; ValidationFailed names the bad fields as ``<prefix>payload.<f>``."""
    try:
        return registry.validate_payload(job_type, payload)
    except ValidationFailed as exc:
        fields = {f"{prefix}payload.{k}": v for k, v in exc.fields.items()}
        raise ValidationFailed(str(exc), fields=fields or None) from None


def _check_capability(platform: str, capability: Capability) -> None:
    if get_plugin(platform).level(capability) == ContractLevel.UNSUPPORTED:
        raise UnsupportedCapability(platform, capability)


def _enqueued_message(row: Mapping[str, Any], now: datetime) -> str:
    later = row["scheduled_at"] > now
    when = f" for {row['scheduled_at'].isoformat()}" if later else ""
    return f"enqueued {row['job_type']} on queue {row['queue']}{when}"


def _publish(
    session: Session,
    org_id: uuid.UUID,
    rows: Sequence[Mapping[str, Any]],
    backlog: Mapping[str, int],
    now: datetime,
) -> None:
    if not rows:
        return
    by_lane: dict[tuple[lanes.Lane, datetime | None], list[tuple[uuid.UUID, str]]] = {}
    for r in rows:
        lane = lanes.lane_for(priority=r["priority"], backlog=backlog.get(r["queue"], 0))
        # A near job's message waits for its due time (recorded as its dispatched_at).
        eta = r["scheduled_at"] if r["scheduled_at"] > now else None
        by_lane.setdefault((lane, eta), []).append((r["id"], r["queue"]))
    labels = {r["id"]: dispatch.JobLabel(r["job_type"], org_id, r["store_id"]) for r in rows}
    for (lane, eta), jobs in by_lane.items():
        dispatch.publish_after_commit(session, jobs, lane=lane, labels=labels, eta=eta)


def _backlogs(
    waiting: Mapping[str, int], new: Sequence[Mapping[str, Any]], batch: int
) -> dict[str, int]:
    """How many jobs this org has waiting on each queue of its ``new`` jobs, those included:
    the insert's count (``waiting``, where it counted) plus the new jobs there. A batch of the
    bulk threshold or more is a backlog by itself: its size, nothing counted."""
    if batch >= lanes.BULK_BACKLOG:
        return {r["queue"]: batch for r in new}
    backlog = dict(waiting)
    for r in new:
        backlog[r["queue"]] = backlog.get(r["queue"], 0) + 1
    return backlog


_PLATFORMS = select(Store.id, Store.platform).where(Store.id.in_(bindparam("ids", expanding=True)))
# The platform of each store this process has enqueued for, by (org, store), read under the
# org's RLS: a store's platform never changes, so a job's queue and capability check need no
# read, and the enqueue's own statement checks that the store is still there. Bounded: the
# whole map is dropped when it would pass PLATFORMS_KEPT (and refilled as jobs come).
PLATFORMS_KEPT = 10_000
_PLATFORM_OF: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
