"""The hub's Redis transport (workers/broker.py), on a real Redis: a delivered message is held
in the worker's memory only and given back when its channel closes; a worker whose Redis went
away survives closing its channels and the acknowledgements that arrive after (the exact
failures of kombu's own transport are reproduced beside it); and it sends its commands
through one Redis client per channel's pool, where kombu's builds one per command."""

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


def _connection(url: str, transport: str) -> Connection:
    """kombu's transport with its own defaults, or the hub's with the hub's options."""
    if transport == STOCK:
        return Connection(url, transport=transport)
    return Connection(url, transport=transport,
                      transport_options=celeryconfig.broker_transport_options)  # fmt: skip


def _delivered(url: str, transport: str) -> tuple[Connection, Any, Message]:
    """A channel holding one delivered, unacknowledged message (acks_late)."""
    conn = _connection(url, transport)
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


def test_the_hubs_transport_leaves_the_message_to_the_sweep_and_goes_on(
    broker: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _restore_after_the_connection_is_gone(broker.url, HUB)
    assert "1 unacknowledged message(s) not given back" in caplog.text


def _unacked_keys(channel: Any) -> list[bytes]:
    return list(channel.client.keys("unacked*"))


def test_the_hubs_transport_holds_a_delivered_message_in_memory_and_gives_it_back_at_close(
    broker: RedisServer,
) -> None:
    # Given a message delivered on the hub's transport and not acknowledged
    _, channel, message = _delivered(broker.url, HUB)
    # Then Redis holds no copy of it: no unacked hash or index, nothing left in the queue
    assert _unacked_keys(channel) == [] and channel.client.llen("t") == 0
    # When the channel closes (a worker stopping gracefully)
    client = channel.client
    channel.close()
    # Then the message is back on its queue
    assert client.llen("t") == 1
    with _connection(broker.url, HUB) as again:
        redelivered = Queue("t", Exchange("t"), "t")(again.channel()).get(no_ack=True)
        assert redelivered is not None and redelivered.payload == message.payload


def test_kombus_own_transport_copies_every_delivered_message_into_redis(
    broker: RedisServer,
) -> None:
    _, channel, _ = _delivered(broker.url, STOCK)
    assert channel.client.hlen(channel.qos.unacked_key) == 1  # what the hub does without


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


def test_the_hubs_transport_takes_a_late_ack_in_memory(broker: RedisServer) -> None:
    conn = _ack_after_the_channel_closed(broker.url, HUB)
    # nothing about the message is left in Redis (the closed channel gave it back first)
    with conn.channel() as channel:
        assert _unacked_keys(channel) == []


def test_celery_uses_the_hubs_transport_for_redis_urls_without_ack_emulation() -> None:
    assert celeryconfig.broker_url.startswith("redis://")
    assert celeryconfig.broker_transport == HUB
    assert celeryconfig.broker_transport_options["ack_emulation"] is False


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
    # every message got there, and Redis never held a copy of the acknowledged one
    assert channel.client.llen("t") == 3
    assert _unacked_keys(channel) == []
    # a replaced pool (after a lost connection) gets a client of its own
    before = channel._create_client()
    channel._pool = None
    after = channel._create_client()
    assert after is not before and after.connection_pool is channel.pool
