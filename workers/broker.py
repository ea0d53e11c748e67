"""kombu's Redis transport as the hub uses it (``celeryconfig.broker_transport`` names it for
redis:// URLs, so the API's publisher and every worker use it): acknowledgements kept in the
worker's memory, one Redis client per connection pool, and a worker that survives losing its
broker.

**Acknowledgements in memory.** With ``ack_emulation`` on (kombu's default), every delivered
message is copied into an "unacked" hash and index in Redis, and removed again when it is
acknowledged: two Redis transactions per message, a quarter of a worker's time on one-job
messages (bench/README.md), so that a killed worker's messages come back after the visibility
timeout. The hub does not need that copy: Postgres holds every job, the dispatcher sweep
republishes a pending job whose message is lost (``FUSION_DISPATCH_STALE_S`` after it was
due) and the reaper gives back a running job whose worker died once its lease expires, both
long before a visibility timeout that must outlast the longest job. So ``celeryconfig`` turns
ack emulation off and a delivered message lives in the worker's memory only
(:class:`QoS`): acknowledging it sends nothing, a worker that stops gracefully gives back
what it holds (kombu's restore at close, from memory), and a long job's message is never
redelivered to a second worker by a visibility timeout, since there is none.

**One client per pool.** kombu builds a new redis-py client for every command it sends
outside the event loop (each publish, each ack), and building one fills its ~170 response
callbacks (0.1 ms, a third of a publish's CPU). A client holds no connection of its own (it
takes one from the channel's pool per command) and is safe to share between threads, so
:class:`Channel` keeps one per pool instead.

**A lost broker.** When Redis goes away, Celery's consumer calls ``connection.collect()``,
which sets the transport's ``client`` to None, then restarts its bootsteps, which close the
channels. Closing the consumer channel gives back its unacknowledged messages, which needs a
Redis client built from ``transport.client``: kombu's own transport fails there with
``AttributeError: 'NoneType' object has no attribute 'hostname'``, which is not a connection
error, so the worker stopped with "Unrecoverable error" (kombu issue 582 shows the same path).
Giving messages back cannot work then (the broker is gone), and their jobs are in Postgres,
so :class:`QoS` leaves them to the dispatcher sweep and says so.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis, virtual

log = logging.getLogger(__name__)


class QoS(virtual.QoS):
    """Unacknowledged messages in the worker's memory (kombu's own bookkeeping for transports
    without ack emulation); given back to their queue when the channel closes, unless the
    broker is gone."""

    def restore_unacked(self) -> list[tuple[BaseException, Any]]:
        transport = self.channel.connection
        if transport is None or transport.client is None:
            log.warning(
                "broker connection gone: %d unacknowledged message(s) not given back; the "
                "dispatcher sweep republishes their jobs (Postgres keeps them)",
                len(self._delivered),
            )
            self._delivered.clear()
            return []
        return super().restore_unacked()


class Channel(redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.ack_emulation:
            self.QoS = QoS  # type: ignore[assignment]  # kombu put virtual.QoS here

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
