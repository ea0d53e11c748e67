"""A publish that keeps failing marks its listing failed at the job's own last attempt: not
earlier while the job still retries, and not never. The job's ``max_attempts`` decides, not
the process's ``FUSION_MAX_ATTEMPTS`` (which only sets the default of new jobs)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service as jobs
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox import SandboxServer
from tests.plugins.e2e import Hub, sandboxes


@pytest.fixture(scope="module")
def shopify() -> Iterator[SandboxServer]:
    with sandboxes(["shopify"]) as started:
        yield started["shopify"]


def _status(admin: Engine, listing_id: uuid.UUID) -> str:
    with admin.connect() as conn:
        return str(
            conn.execute(
                text("SELECT status FROM listings WHERE id = :id"), {"id": listing_id}
            ).scalar_one()
        )


@pytest.mark.parametrize(("process_default", "job_attempts"), [(8, 3), (3, 5)])
def test_the_listing_fails_exactly_when_its_job_does(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    shopify: SandboxServer,
    process_default: int,
    job_attempts: int,
) -> None:
    # Given a Shopify store whose platform answers every call with a 500, a worker whose
    # FUSION_MAX_ATTEMPTS differs from the job's own max_attempts
    shopify.app.knobs.reset()
    hub = Hub(settings, database, admin_engine, org_a)
    store = hub.connect("shopify", shopify)
    listing_id, _ = hub.product(store)
    store.knobs(error_rate=1.0)
    with database.org_session(org_a) as session:
        job_id = jobs.enqueue(
            session,
            org_id=org_a,
            job_type="create_product",
            store_id=store.id,
            payload={"listing_id": str(listing_id)},
            max_attempts=job_attempts,
        ).id
    engine = JobEngine(
        dataclasses.replace(settings, max_attempts=process_default, retry_ladder_s=(0,)),
        database,
        db_patience_s=5,
    )
    engine.start()
    try:
        # When every attempt but the last fails, the listing is still being published
        for attempt in range(1, job_attempts):
            assert engine.execute(job_id) is Outcome.RETRY
            assert (attempt, _status(admin_engine, listing_id)) == (attempt, "publishing")
            with admin_engine.begin() as conn:
                conn.execute(text("UPDATE jobs SET scheduled_at = now() WHERE id = :id"),
                             {"id": job_id})  # fmt: skip
        # And when the last one fails, job and listing fail together
        assert engine.execute(job_id) is Outcome.FAILED
    finally:
        engine.stop()
        shopify.app.knobs.reset()
    row = hub.job(job_id)
    assert (row.status, row.attempts, _status(admin_engine, listing_id)) == (
        "failed",
        job_attempts,
        "failed",
    )
