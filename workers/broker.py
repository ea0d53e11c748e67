"""kombu's Redis transport with one fix and one saving (``celeryconfig.broker_transport``
names it for redis:// URLs, so the API's publisher and every worker use it).

The saving: kombu builds a new redis-py client for every command it sends outside the event
loop (each publish, each acknowledgement, each delivery's entry in the unacked index), and
building one fills its ~170 response callbacks (0.1 ms, a third of a publish's CPU). A client
holds no connection of its own (it takes one from the channel's pool per command) and is
safe to share between threads, so :class:`Channel` keeps one per pool instead.

The fix: a worker whose broker connection dropped survives
closing its consumer channel, and the acknowledgements that arrive after it closed.

When Redis goes away, Celery's consumer calls ``connection.collect()``, which sets the
transport's ``client`` to None, then restarts its bootsteps, which close the channels. Closing
the consumer channel restores its unacknowledged messages (acks_late) and, when the channel
was polling, builds a new Redis client from ``transport.client``: ``AttributeError: 'NoneType'
object has no attribute 'hostname'``, which is not a connection error, so the worker stopped
with "Unrecoverable error" (kombu issue 582 shows the same path). Restoring there cannot work
anyway (the broker is gone); the messages stay in Redis's unacked index, which kombu restores
after the visibility timeout, and Postgres holds every job (the dispatcher sweep republishes
a pending job whose message is stale), so skipping it loses nothing.

The same holds for an acknowledgement that lands after the channel closed: Celery defers acks
to the event loop (``call_soon``), so a job that finished while Redis was restarting acks on a
channel whose ``connection`` is already None, and kombu's ack builds a client from it:
``AttributeError: 'NoneType' object has no attribute 'client'``, again "Unrecoverable error".
The ack cannot reach the broker; the message stays in the unacked index, comes back after the
visibility timeout, and its job's guarded claim (docs/jobs.md) finds the job finished and runs
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis

log = logging.getLogger(__name__)


class QoS(redis.QoS):
    def _broker_gone(self) -> bool:
        transport = self.channel.connection
        return transport is None or transport.client is None

    def ack(self, delivery_tag: Any) -> None:
        if self._broker_gone():
            self._forget(delivery_tag, "acknowledgement")
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._broker_gone():
            self._forget(delivery_tag, "rejection")
            return
        super().reject(delivery_tag, requeue=requeue)

    def _forget(self, delivery_tag: Any, what: str) -> None:
        log.warning(
            "broker connection gone: %s of message %s left to the broker, which restores it "
            "after the visibility timeout (its job's claim then finds it settled)",
            what,
            delivery_tag,
        )
        self._quick_ack(delivery_tag)  # kombu's own bookkeeping: the tag is no longer held

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self._broker_gone():
            log.warning(
                "broker connection gone: %d unacknowledged message(s) left for the broker to "
                "restore after the visibility timeout (Postgres keeps their jobs)",
                len(self._delivered),
            )
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(redis.Channel):
    QoS = QoS
    _shared: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """The channel's one client of its current pool (kombu's: a new one per command).
        A pool replaced after a lost connection gets a client of its own."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        shared = self._shared
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared = super()._create_client()
        return shared


class Transport(redis.Transport):
    Channel = Channel
