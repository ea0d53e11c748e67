"""claim_next_job hands each due pending job to exactly one of several concurrent callers."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from sqlalchemy import Engine, text

from fusion.db.session import Database


def _enqueue(database: Database, org: uuid.UUID, n: int, *, delay_s: int = 0) -> set[uuid.UUID]:
    with database.org_session(org) as session:
        return {
            session.execute(
                text(
                    "SELECT enqueue_job(:org, 'noop', 'default', '{}'::jsonb, NULL, 0, "
                    "now() + make_interval(secs => :delay))"
                ),
                {"org": org, "delay": delay_s},
            ).scalar_one()
            for _ in range(n)
        }


def test_each_due_job_goes_to_exactly_one_of_eight_concurrent_claimers(
    database: Database, org_a: uuid.UUID, org_b: uuid.UUID
) -> None:
    due = _enqueue(database, org_a, 100) | _enqueue(database, org_b, 100)
    future = _enqueue(database, org_a, 5, delay_s=3600)
    claimed: list[uuid.UUID] = []
    lock = threading.Lock()

    def claimer(worker: str) -> None:
        while True:
            with database.system_session() as session:
                row = session.execute(
                    text("SELECT id FROM claim_next_job(:w, ARRAY['default'], 30)"), {"w": worker}
                ).first()
            if row is None:
                return
            with lock:
                claimed.append(row[0])

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == due
    assert not (set(claimed) & future)


def test_claim_marks_the_job_claimed_with_a_lease(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    (job,) = _enqueue(database, org_a, 1)
    with database.system_session() as session:
        row = session.execute(
            text("SELECT id, status, locked_by, attempts FROM claim_next_job('w1', NULL, 30)")
        ).one()
    assert (row.id, row.status, row.locked_by, row.attempts) == (job, "claimed", "w1", 1)
    with admin_engine.connect() as conn:
        lease = conn.execute(
            text("SELECT lease_expires_at > now() FROM jobs WHERE id = :id"), {"id": job}
        ).scalar_one()
    assert lease is True


def test_an_idempotency_key_returns_the_first_job(database: Database, org_a: uuid.UUID) -> None:
    def enqueue() -> uuid.UUID:
        with database.org_session(org_a) as session:
            return session.execute(
                text("SELECT enqueue_job(:org, 'noop', 'default', p_idempotency_key => 'k-1')"),
                {"org": org_a},
            ).scalar_one()

    assert enqueue() == enqueue()
