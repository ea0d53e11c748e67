"""Approval expiry: only pending approvals past their expiry become expired, each with a
system audit entry in its own org's intact chain; nothing runs for them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import celeryconfig
from fusion.approvals import service
from fusion.approvals.expiry import ExpiredApproval, expire_due
from fusion.audit.service import verify
from fusion.auth.access import Access, ActorType, Principal
from fusion.auth.models import Role
from fusion.db.session import Database
from fusion.errors import Conflict
from fusion.jobs import dispatch
from tests.workers.conftest import Celery, celery, wait_until, worker_env  # noqa: F401
from workers.dispatcher import producer_app


@pytest.fixture(autouse=True)
def _no_publisher() -> Iterator[None]:
    # Expiry enqueues nothing; with no dispatcher installed any enqueue would still leave a row.
    previous = dispatch.installed()
    dispatch.install(None)
    yield
    dispatch.install(previous)


def add_approval(
    admin_engine: Engine, org: uuid.UUID, *, expires_in_s: int, status: str = "pending"
) -> uuid.UUID:
    approval_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO approvals (id, org_id, resource_type, resource_id, action, payload, "
                "status, expires_at) VALUES (:id, :org, 'listing', :res, 'delete', "
                "'{\"job_type\": \"delete_product\"}', CAST(:status AS approval_status), "
                "now() + make_interval(secs => :secs))"
            ),
            {"id": approval_id, "org": org, "res": uuid.uuid4(), "status": status,
             "secs": expires_in_s},
        )  # fmt: skip
    return approval_id


def statuses(admin_engine: Engine) -> dict[uuid.UUID, str]:
    with admin_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status::text FROM approvals")).all()
    return {r.id: r.status for r in rows}


def expiry_entries(admin_engine: Engine, org: uuid.UUID) -> list[dict[str, Any]]:
    with admin_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor_type, actor_id, resource_type, resource_id, before, after "
                "FROM audit_logs WHERE org_id = :org AND action = 'approval.expire' ORDER BY seq"
            ),
            {"org": org},
        ).all()
    return [dict(r._mapping) for r in rows]


def count(admin_engine: Engine, table: str) -> int:
    with admin_engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_only_past_due_pending_approvals_expire_each_audited_in_its_own_org(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, org_b: uuid.UUID
) -> None:
    # Given a past-due and a future pending approval and a past-due approved one in org A,
    # and a past-due pending one in org B
    a_due = add_approval(admin_engine, org_a, expires_in_s=-60)
    a_future = add_approval(admin_engine, org_a, expires_in_s=3600)
    a_approved = add_approval(admin_engine, org_a, expires_in_s=-60, status="approved")
    b_due = add_approval(admin_engine, org_b, expires_in_s=-1)
    # When expiry runs
    expired = expire_due(database)
    # Then exactly the two past-due pending ones are expired
    assert sorted(expired, key=lambda e: str(e.org_id)) == sorted(
        [ExpiredApproval(org_a, a_due), ExpiredApproval(org_b, b_due)], key=lambda e: str(e.org_id)
    )
    assert statuses(admin_engine) == {
        a_due: "expired",
        a_future: "pending",
        a_approved: "approved",
        b_due: "expired",
    }
    # and each has one system audit entry in its own org, pending -> expired
    for org, approval in ((org_a, a_due), (org_b, b_due)):
        [entry] = expiry_entries(admin_engine, org)
        assert entry["actor_type"] == "system" and entry["actor_id"] is None
        assert (entry["resource_type"], entry["resource_id"]) == ("approval", approval)
        assert entry["before"]["status"] == "pending"
        assert entry["after"]["status"] == "expired"
        assert entry["after"]["action"] == "delete"
        with database.org_session(org) as session:
            assert verify(session, org) is None
    # and nothing was enqueued for them
    assert count(admin_engine, "jobs") == 0


def test_a_second_run_expires_nothing_and_writes_no_audit(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    add_approval(admin_engine, org_a, expires_in_s=-60)
    assert len(expire_due(database)) == 1
    assert expire_due(database) == []
    assert len(expiry_entries(admin_engine, org_a)) == 1


def test_batches_expire_all_with_the_chain_intact(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    due = {add_approval(admin_engine, org_a, expires_in_s=-60 - i) for i in range(5)}
    expired = expire_due(database, batch=2)
    assert {e.approval_id for e in expired} == due
    assert [e["resource_id"] for e in expiry_entries(admin_engine, org_a)] == [
        e.approval_id for e in expired
    ]
    with database.org_session(org_a) as session:
        assert verify(session, org_a) is None
    with pytest.raises(ValueError):
        expire_due(database, batch=0)


def test_an_expired_approval_cannot_be_approved_and_runs_nothing(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    approval = add_approval(admin_engine, org_a, expires_in_s=-60)
    expire_due(database)
    owner = Access(Principal(ActorType.USER, uuid.uuid4()), org_a, Role.OWNER)
    with pytest.raises(Conflict, match="already expired"), database.org_session(org_a) as s:
        service.decide(s, owner, approval, approve=True, note=None)
    assert statuses(admin_engine) == {approval: "expired"}
    assert count(admin_engine, "jobs") == 0


def test_the_beat_task_run_by_a_real_worker_expires_approvals(
    celery: Celery,  # noqa: F811
    worker_env: dict[str, str],  # noqa: F811
    admin_engine: Engine,
    org_a: uuid.UUID,
) -> None:
    due = add_approval(admin_engine, org_a, expires_in_s=-60)
    later = add_approval(admin_engine, org_a, expires_in_s=3600)
    worker = celery.worker("housekeeping", queues="default", concurrency=2)
    sender = producer_app()
    sender.conf.broker_url = worker_env["FUSION_REDIS_URL"]
    sender.send_task(celeryconfig.EXPIRE_APPROVALS, queue="default")
    wait_until(lambda: statuses(admin_engine)[due] == "expired", 30)
    assert statuses(admin_engine)[later] == "pending"
    assert len(expiry_entries(admin_engine, org_a)) == 1
    wait_until(lambda: "expired 1 approval(s)" in worker.output(), 10)
