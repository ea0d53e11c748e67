"""How the Celery dispatcher packs job ids into messages (pure logic, no broker needed), and
that one publish sends all its messages to a real Redis in one pipeline, not a round trip
each."""

from __future__ import annotations

import uuid
from typing import Any

import kombu.messaging
import pytest
import redis
from celery import Celery

import celeryconfig
from fusion.jobs.lanes import Lane
from tests.support.servers import RedisServer
from workers.dispatcher import BULK_CHUNK, CeleryDispatcher


def _jobs(n: int, queue: str = "etsy") -> list[tuple[uuid.UUID, str]]:
    return [(uuid.uuid4(), queue) for _ in range(n)]


def test_normal_and_urgent_jobs_get_one_message_each() -> None:
    dispatcher = CeleryDispatcher(Celery("t"))
    jobs = _jobs(100)
    for lane in (Lane.NORMAL, Lane.URGENT):
        messages = dispatcher._messages(jobs, lane)
        assert messages == [("etsy", [str(job_id)]) for job_id, _ in jobs]


def test_a_bulk_batch_is_packed_per_queue_into_small_chunks_keeping_every_id_once() -> None:
    dispatcher = CeleryDispatcher(Celery("t"))
    jobs = _jobs(2000) + _jobs(10, "shopify")
    messages = dispatcher._messages(jobs, Lane.BULK)
    ids = [i for _, chunk in messages for i in chunk]
    assert sorted(ids) == sorted(str(j) for j, _ in jobs)
    assert max(len(chunk) for _, chunk in messages) == BULK_CHUNK
    assert {q for q, chunk in messages if len(chunk) > 1} == {"etsy"}  # 10 jobs: spread out
    assert all(q == "shopify" for q, chunk in messages if str(jobs[-1][0]) in chunk)


def test_chunking_can_be_turned_off() -> None:
    dispatcher = CeleryDispatcher(Celery("t"), bulk_chunk=1)
    assert len(dispatcher._messages(_jobs(300), Lane.BULK)) == 300


def test_one_publish_sends_its_messages_in_one_pipeline(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Celery("t")
    app.config_from_object(celeryconfig)
    app.conf.broker_url = broker.url
    sent: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(self.command_stack))
        return execute(self, *args, **kwargs)

    dispatcher = CeleryDispatcher(app)
    dispatcher.publish(_jobs(1, "shopify"), Lane.NORMAL)  # the queue's binding, declared once
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    # When 40 jobs are published in the normal lane (one message each)
    dispatcher.publish(_jobs(40, "shopify"), Lane.NORMAL)
    # Then Redis got them in one round trip, and every message is on the queue's lane
    assert sent == [40]
    client = redis.Redis.from_url(broker.url)
    assert sum(client.llen(k) for k in client.keys("shopify*")) == 41


def test_a_publish_declares_each_queue_once_and_a_new_queue_gets_its_messages(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Celery("t")
    app.config_from_object(celeryconfig)
    app.conf.broker_url = broker.url
    declared: list[str] = []
    maybe_declare = kombu.messaging.maybe_declare

    def counted(entity: Any, *args: Any, **kwargs: Any) -> Any:
        declared.append(entity.name)
        return maybe_declare(entity, *args, **kwargs)

    monkeypatch.setattr(kombu.messaging, "maybe_declare", counted)
    client = redis.Redis.from_url(broker.url)
    # When 30 jobs on two queues neither of which was declared are published, one message each
    CeleryDispatcher(app).publish(_jobs(20, "etsy") + _jobs(10, "amazon_sc"), Lane.NORMAL)
    # Then each queue was declared once, by its first message, and holds all of its messages
    assert declared == ["etsy", "amazon_sc"]
    assert sum(client.llen(k) for k in client.keys("etsy*")) == 20
    assert sum(client.llen(k) for k in client.keys("amazon_sc*")) == 10
    bindings = b" ".join(client.smembers(b"_kombu.binding.default"))
    assert b"etsy" in bindings and b"amazon_sc" in bindings
