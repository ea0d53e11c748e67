"""job engine: fewer writes per job

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03

- A claim writes one job_logs row, not two. ``job_claim`` and ``job_claim_many`` moved a job
  from pending to running in one UPDATE and logged it twice ("claimed by W" with status
  ``claimed``, then "running: attempt n of m"), a state the job was never in. The one row now
  says "running: attempt n of m, claimed by W" (data: status ``running``, attempt, worker).
  Both functions become single SQL statements (UPDATE ... RETURNING, and the log rows as one
  INSERT ... SELECT of it) instead of plpgsql loops: the same conditions and locks
  (``job_claim`` waits for a row another transaction holds, ``job_claim_many`` skips it).
- The GIN index on ``jobs.payload`` goes. No query of the hub searches job payloads by
  content (a store's pending push is found by ``ix_jobs_store_id_status``), and it cost every
  job three GIN insertions: the enqueue, the claim and the outcome each write a new row
  version, and a changed status never makes a heap-only update.
- ``job_logs`` loses its foreign key to ``orgs`` and the index on (org_id, created_at). A line
  belongs to its job (``job_id`` → ``jobs``, on delete cascade), and an org's deletion reaches
  it through its jobs; the key was checked for every line of every transition, each check
  share-locking the org's one row, and no query reads an org's lines across its jobs (a job's
  log is read by ``ix_job_logs_job_id_created_at``). ``org_id`` stays, for row-level security.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

CLAIMED = """
        UPDATE jobs j
           SET status = 'running', locked_by = p_worker, claimed_at = now(), started_at = now(),
               lease_expires_at = now() + make_interval(secs => p_lease_seconds),
               attempts = j.attempts + 1, updated_at = now()"""

CLAIM = """
CREATE OR REPLACE FUNCTION job_claim(p_job_id uuid, p_worker text, p_lease_seconds integer)
RETURNS SETOF jobs LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH claimed AS ({claimed}
         WHERE j.id = p_job_id AND j.status = 'pending' AND j.scheduled_at <= now()
           AND NOT j.cancel_requested
        RETURNING j.*
    ), logged AS ({log})
    SELECT * FROM claimed;
$$"""

CLAIM_MANY = """
CREATE OR REPLACE FUNCTION job_claim_many(p_ids uuid[], p_worker text, p_lease_seconds integer)
RETURNS SETOF jobs LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH pick AS (
        SELECT c.id FROM jobs c
         WHERE c.id = ANY (p_ids) AND c.status = 'pending' AND c.scheduled_at <= now()
           AND NOT c.cancel_requested
         ORDER BY c.id
           FOR UPDATE SKIP LOCKED
    ), claimed AS ({claimed}
          FROM pick
         WHERE j.id = pick.id
        RETURNING j.*
    ), logged AS ({log})
    SELECT * FROM claimed;
$$"""

ONE_LOG_ROW = """
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), c.org_id, c.id, 'info',
               format('running: attempt %s of %s, claimed by %s', c.attempts, c.max_attempts,
                      p_worker),
               jsonb_build_object('status', 'running', 'attempt', c.attempts, 'worker', p_worker),
               clock_timestamp(), clock_timestamp()
          FROM claimed c
    """

# Revision 0006's two rows per claim, claimed before running: clock_timestamp() is evaluated
# after the ORDER BY (a volatile output column), so the times increase in that order.
TWO_LOG_ROWS = """
        INSERT INTO job_logs (id, org_id, job_id, level, message, data, created_at, updated_at)
        SELECT gen_random_uuid(), c.org_id, c.id, 'info', l.message, l.data,
               clock_timestamp(), clock_timestamp()
          FROM claimed c CROSS JOIN LATERAL (VALUES
               (1, 'claimed by ' || p_worker,
                jsonb_build_object('status', 'claimed', 'worker', p_worker)),
               (2, format('running: attempt %s of %s', c.attempts, c.max_attempts),
                jsonb_build_object('status', 'running', 'attempt', c.attempts))
          ) AS l(n, message, data)
         ORDER BY c.id, l.n
    """


def _claims(log: str) -> None:
    for body in (CLAIM, CLAIM_MANY):
        op.execute(body.format(claimed=CLAIMED, log=log))


def upgrade() -> None:
    _claims(ONE_LOG_ROW)
    op.drop_index("ix_jobs_payload", table_name="jobs", postgresql_using="gin")
    op.drop_constraint("fk_job_logs_org_id_orgs", "job_logs", type_="foreignkey")
    op.drop_index("ix_job_logs_org_id_created_at", table_name="job_logs")


def downgrade() -> None:
    op.create_index(
        "ix_job_logs_org_id_created_at",
        "job_logs",
        ["org_id", sa.literal_column("created_at DESC")],
    )
    op.create_foreign_key(
        "fk_job_logs_org_id_orgs", "job_logs", "orgs", ["org_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index("ix_jobs_payload", "jobs", ["payload"], unique=False, postgresql_using="gin")
    _claims(TWO_LOG_ROWS)
