"""kombu's Redis transport with one fix: a worker whose broker connection dropped survives
closing its consumer channel (``celeryconfig.broker_transport`` names it for redis:// URLs).

When Redis goes away, Celery's consumer calls ``connection.collect()``, which sets the
transport's ``client`` to None, then restarts its bootsteps, which close the channels. Closing
the consumer channel restores its unacknowledged messages (acks_late) and, when the channel
was polling, builds a new Redis client from ``transport.client``: ``AttributeError: 'NoneType'
object has no attribute 'hostname'``, which is not a connection error, so the worker stopped
with "Unrecoverable error" (kombu issue 582 shows the same path). Restoring there cannot work
anyway (the broker is gone); the messages stay in Redis's unacked index, which kombu restores
after the visibility timeout, and Postgres holds every job (the dispatcher sweep republishes
a pending job whose message is stale), so skipping it loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis

log = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
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


class Transport(redis.Transport):
    Channel = Channel
