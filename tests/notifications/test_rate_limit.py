"""A channel's rate limit, run by the real job engine in this process over the real database
and Redis: past the channel's allowance a delivery waits, without spending an attempt and
without calling the receiver, while another channel is not held up."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis as redis_lib
from sqlalchemy import Engine, text

import boot
from fusion.auth.access import Access, ActorType, Principal
from fusion.auth.models import Role
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.notifications import service
from fusion.notifications.models import ChannelKind
from tests.conftest import make_org
from tests.notifications.receivers import HttpReceiver


@pytest.fixture
def engine(
    settings: Settings, database: Database, redis_client: redis_lib.Redis
) -> Iterator[JobEngine]:
    boot.load_jobs()
    previous = dispatch.installed()
    dispatch.install(None)
    # one notification a minute per channel
    engine = JobEngine(
        dataclasses.replace(settings, notify_per_minute=1), database, redis=redis_client
    )
    engine.start()
    yield engine
    engine.stop()
    dispatch.install(previous)


def _channel(database: Database, settings: Settings, org: uuid.UUID, url: str) -> uuid.UUID:
    access = Access(Principal(ActorType.SYSTEM, uuid.uuid4()), org, Role.OWNER)
    with database.org_session(org) as session:
        made = service.create_channel(session, access, settings, name="c", kind=ChannelKind.WEBHOOK,
                                      target=url, events=["stock.out"])  # fmt: skip
        return made.channel.id


def _test(database: Database, org: uuid.UUID, channel_id: uuid.UUID) -> uuid.UUID:
    access = Access(Principal(ActorType.SYSTEM, uuid.uuid4()), org, Role.OWNER)
    with database.org_session(org) as session:
        job_id = service.send_test(session, access, channel_id).job_id
    assert job_id is not None
    return job_id


def test_a_channel_past_its_allowance_waits_and_spends_no_attempt(
    engine: JobEngine, database: Database, settings: Settings, admin_engine: Engine,
    receiver: HttpReceiver,
) -> None:  # fmt: skip
    org = make_org(admin_engine, "Limited")
    busy = _channel(database, settings, org, receiver.url + "/busy")
    other = _channel(database, settings, org, receiver.url + "/other")
    first, second, third = (_test(database, org, busy) for _ in range(3))
    elsewhere = _test(database, org, other)
    # The first goes out; the next two wait for the bucket; the other channel's goes out
    assert engine.execute(first) is Outcome.COMPLETED
    assert engine.execute(second) is Outcome.RESCHEDULED
    assert engine.execute(third) is Outcome.RESCHEDULED
    assert engine.execute(elsewhere) is Outcome.COMPLETED
    assert (len(receiver.at("/busy")), len(receiver.at("/other"))) == (1, 1)
    with admin_engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT j.status::text, j.attempts, j.scheduled_at, d.attempts AS sent "
                 "FROM jobs j JOIN notification_deliveries d ON d.job_id = j.id "
                 "WHERE j.id = ANY(:ids) ORDER BY j.scheduled_at"),
            {"ids": [second, third]},
        ).all()  # fmt: skip
    now = datetime.now(UTC)
    # each waits about a token's refill (one a minute), in line, no attempt spent or logged
    assert [(w.status, w.attempts, w.sent) for w in waiting] == [("pending", 0, 0)] * 2
    waits = [(w.scheduled_at - now).total_seconds() for w in waiting]
    assert 50 < waits[0] <= 61 and waits[1] > waits[0] + 50
