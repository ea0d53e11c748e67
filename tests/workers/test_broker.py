"""A worker whose Redis went away survives closing its channels and the acknowledgements that
arrive after (workers/broker.py): the exact failures of kombu's transport, reproduced on a
real Redis, and the hub's transport. And the hub's transport sends its commands through one
Redis client per channel's pool, where kombu's builds one per command."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.message import Message

import celeryconfig
from tests.support.servers import RedisServer

STOCK = "redis"
HUB = "workers.broker:Transport"


def _delivered(url: str, transport: str) -> tuple[Connection, Any, Message]:
    """A channel holding one delivered, unacknowledged message (acks_late)."""
    conn = Connection(url, transport=transport)
    channel = conn.channel()
    queue = Queue("t", Exchange("t"), "t")
    queue(channel).declare()
    conn.Producer(channel).publish({"job": 1}, exchange="t", routing_key="t")
    message = queue(channel).get(no_ack=False)
    assert message is not None
    return conn, channel, message


def _restore_after_the_connection_is_gone(url: str, transport: str) -> None:
    # Given a channel holding one delivered, unacknowledged message (acks_late)
    conn, channel, _ = _delivered(url, transport)
    # When the consumer has dropped its broken connection (Connection.close and collect
    # leave the transport without its client) and a bootstep then closes the polling
    # channel, which builds a fresh Redis client to restore the message
    conn.transport.client = None
    channel.__dict__.pop("client", None)
    channel._pool = None
    channel.qos.restore_unacked_once()


def test_kombus_own_transport_fails_there_as_the_worker_did(broker: RedisServer) -> None:
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
        _restore_after_the_connection_is_gone(broker.url, STOCK)


def test_the_hubs_transport_leaves_the_message_to_the_broker_and_goes_on(
    broker: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _restore_after_the_connection_is_gone(broker.url, HUB)
    assert "1 unacknowledged message(s) left for the broker" in caplog.text


def _ack_after_the_channel_closed(url: str, transport: str) -> Connection:
    # Given a delivered, unacknowledged message (acks_late) whose job has just finished
    conn, channel, message = _delivered(url, transport)
    # When the broker connection drops and the consumer closes the channel before the
    # deferred ack (Celery's call_soon) runs on the event loop
    conn.transport.close_channel(channel)
    channel._pool = None
    message.ack_log_error(logging.getLogger("test"), conn.connection_errors)
    return conn


def test_kombus_own_transport_crashes_on_a_late_ack(broker: RedisServer) -> None:
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'client'"):
        _ack_after_the_channel_closed(broker.url, STOCK)


def test_the_hubs_transport_leaves_a_late_ack_to_the_visibility_timeout(
    broker: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = _ack_after_the_channel_closed(broker.url, HUB)
    assert "acknowledgement of message" in caplog.text
    # the message is still held in the broker's unacked index, to come back (not lost)
    with conn.channel() as channel:
        assert channel.client.hlen(channel.qos.unacked_key) == 1


def test_celery_uses_the_hubs_transport_for_redis_urls() -> None:
    assert celeryconfig.broker_url.startswith("redis://")
    assert celeryconfig.broker_transport == HUB


def _clients_of(url: str, transport: str) -> tuple[set[int], Any]:
    """The Redis clients a channel sent three publishes, a delivery and its ack through."""
    conn, channel, message = _delivered(url, transport)
    used: set[int] = set()
    build = channel._create_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        client = build(*args, **kwargs)
        used.add(id(client))
        return client

    channel._create_client = counted
    producer = conn.Producer(channel)
    for n in range(3):
        producer.publish({"job": n}, exchange="t", routing_key="t")
    message.ack()
    return used, channel


def test_kombus_own_transport_builds_a_client_per_command(broker: RedisServer) -> None:
    used, _ = _clients_of(broker.url, STOCK)
    assert len(used) >= 4  # at least one per publish and one for the ack


def test_the_hubs_transport_sends_through_one_client_until_its_pool_is_replaced(
    broker: RedisServer,
) -> None:
    used, channel = _clients_of(broker.url, HUB)
    assert len(used) == 1
    # every message got there, and the ack left the broker's unacked index
    assert channel.client.llen("t") == 3
    assert channel.client.hlen(channel.qos.unacked_key) == 0
    # a replaced pool (after a lost connection) gets a client of its own
    before = channel._create_client()
    channel._pool = None
    after = channel._create_client()
    assert after is not before and after.connection_pool is channel.pool
