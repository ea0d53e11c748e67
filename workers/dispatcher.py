"""The Celery implementation of the publish port (``fusion.jobs.dispatch.Dispatcher``).

Public on purpose: the API hands it to ``boot.start`` (``CeleryDispatcher(publisher)``), the
one thing the API may import from ``workers``. A message carries job ids only, sent by task
name to the jobs' queue; never a payload.

Urgent and normal lanes get one message per job (``fusion.run_job``): lowest latency, and
every worker slot can take one. The bulk lane packs a big batch into messages of up to
``BULK_CHUNK`` ids (``fusion.run_jobs``), claimed a few at a time as fast as they run and run
one job at a time: Celery's per-message cost is most of a short job's cost, and a 10,000-job
import need not pay it 10,000 times. A batch starts on at least ``SPREAD`` messages; a
message whose jobs outlast its time slice passes the rest on as two messages, so a slow batch
spreads over more worker slots with every slice (``workers.app.run_jobs``).

Flower shows a message's ``argsrepr`` as its arguments: a job's type, org and store (the
publish port's labels) where they are known, for a bulk message its job types and count;
never a payload value (the message carries none).

A job due within ``fusion.jobs.dispatch.NEAR_S`` is published with its due time as the
message's ``eta`` (plus ``ETA_SLACK_S``). The Redis transport hands it to a worker at once,
which holds it (unacknowledged, outside its prefetch count) until then and then claims it as
any other message: the claim, by Postgres' clock, must find the job due, and the slack covers
a worker clock a little ahead of Postgres'. A worker that stops gracefully gives the messages
it holds back to the queue (soft shutdown); one killed takes them with it (they are held in
its memory, workers/broker.py), and the dispatcher sweep republishes the jobs
``FUSION_DISPATCH_STALE_S`` after they were due. Either way the claim runs each job once.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from celery import Celery
from celery.utils import uuid as celery_uuid

import celeryconfig
from fusion.jobs.dispatch import Labels
from fusion.jobs.lanes import Lane

BULK_CHUNK = 64
# Aim for at least this many messages per batch, so that many worker slots start on it.
SPREAD = 16
# A delayed message runs this long after its job's due time: the claim compares with
# Postgres' now(), and a worker's clock may be a little ahead of the database's.
ETA_SLACK_S = 0.05


def producer_app() -> Celery:
    """A Celery app that only publishes, configured from ``celeryconfig``."""
    app = Celery("fusion-publisher")
    app.config_from_object(celeryconfig)
    return app


class CeleryDispatcher:
    """Publishes ``fusion.run_job(job_id)`` messages on one pooled connection: one per job, or
    ``fusion.run_jobs`` chunks in the bulk lane."""

    def __init__(self, app: Celery | None = None, *, bulk_chunk: int = BULK_CHUNK) -> None:
        self.app = app or producer_app()
        self.bulk_chunk = max(bulk_chunk, 1)

    def publish(
        self,
        jobs: Sequence[tuple[uuid.UUID, str]],
        lane: Lane = Lane.NORMAL,
        labels: Labels | None = None,
        *,
        eta: datetime | None = None,
    ) -> None:
        if not jobs:
            return
        run_at = eta + timedelta(seconds=ETA_SLACK_S) if eta is not None else None
        amqp = self.app.amqp
        # Celery's own message (protocol 2) and publish, without what send_task adds and the
        # dispatcher does not use (routing by task name, per-call configuration reads, result
        # and parent-task bookkeeping: results are ignored, and a job's lineage is its row's
        # parent_job_id): half of a message's publish.
        # Each queue is declared by its first message only: kombu remembers a declaration
        # per connection, but its check copies and binds the queue on every message.
        declared: set[str] = set()
        # One batch (kombu's Producer.batch: a Redis pipeline, sent when the block ends) for
        # all the messages of one call, not a round trip each; a failed send raises here,
        # the jobs stay pending, and the dispatcher sweep sends them again.
        with self.app.producer_or_acquire() as producer, producer.batch():
            for queue, ids in self._messages(jobs, lane):
                name = celeryconfig.RUN_JOB if len(ids) == 1 else celeryconfig.RUN_JOBS
                message = amqp.create_task_message(
                    celery_uuid(),
                    name,
                    [ids[0]] if len(ids) == 1 else [ids, queue],
                    eta=run_at,
                    argsrepr=argsrepr(ids, labels or {}),
                    ignore_result=True,
                )
                amqp.send_task_message(
                    producer,
                    name,
                    message,
                    queue=queue,
                    routing_key=queue,
                    priority=int(lane),
                    declare=None if queue not in declared else [],
                )
                declared.add(queue)

    def _messages(
        self, jobs: Sequence[tuple[uuid.UUID, str]], lane: Lane
    ) -> list[tuple[str, list[str]]]:
        if lane != Lane.BULK or self.bulk_chunk == 1:
            return [(queue, [str(job_id)]) for job_id, queue in jobs]
        by_queue: dict[str, list[str]] = defaultdict(list)
        for job_id, queue in jobs:
            by_queue[queue].append(str(job_id))
        messages = []
        for queue, ids in by_queue.items():
            size = min(self.bulk_chunk, max(1, math.ceil(len(ids) / SPREAD)))
            messages += [(queue, ids[i : i + size]) for i in range(0, len(ids), size)]
        return messages


def argsrepr(ids: Sequence[str], labels: Labels) -> str:
    """What Flower shows as a message's arguments: for one job its id, type, org and store;
    for a bulk message how many jobs and of which types (by count), and the orgs' count.
    Jobs without a label (republished by a sweep) show their ids only."""
    known = [label for i in ids if (label := labels.get(uuid.UUID(i))) is not None]
    if len(ids) == 1:
        return f"{ids[0]} {known[0]}" if known else repr((ids[0],))
    types = Counter(label.job_type for label in known)
    kinds = ", ".join(f"{name} x{count}" for name, count in sorted(types.items()))
    orgs = len({label.org_id for label in known})
    unknown = len(ids) - len(known)
    rest = f", {unknown} unlabelled" if unknown else ""
    return f"{len(ids)} jobs ({kinds}{rest}) in {orgs} org(s)" if known else f"{len(ids)} jobs"
