"""The Celery app Flower loads: ``celery -A workers.flower flower``.

Flower watches the broker (events, queues, workers) and runs no task, so it gets an app made
from ``celeryconfig`` alone, which reads ``BrokerSettings``: the broker URL and the broker and
sweep knobs. Nothing Flower imports reads the JWT secret, the encryption keys or the database
URLs, and ``fusion up`` and docker-compose start it without them in its environment.
"""

from __future__ import annotations

from celery import Celery

import celeryconfig

app = Celery("fusion")
app.config_from_object(celeryconfig)
