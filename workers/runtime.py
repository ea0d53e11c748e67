"""What a worker process holds: settings, database, Redis, the engine; built once, lazily.

Thread-pool workers share one runtime per process. It is built on first use (not at import)
so that ``celery inspect`` and friends never connect to Postgres.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

import boot
from fusion import telemetry
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError
from fusion.jobs.engine import Engine
from workers.dispatcher import CeleryDispatcher

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    database: Database
    redis: Any
    engine: Engine
    pid: int


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime(app: Celery) -> Runtime:
    """This process's runtime, built on first call: started as every hub process is
    (``boot.start``: log redaction, job modules, payload validator, plugin contracts, the
    Celery dispatcher), then the lease keeper started."""
    global _runtime
    # A forked pool child must not reuse its parent's connections: it builds its own.
    if _runtime is not None and _runtime.pid == os.getpid():
        return _runtime
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            settings = Settings.from_env()
            if not settings.app_database_url:
                raise ConfigError("FUSION_DATABASE_URL or FUSION_APP_DATABASE_URL: required")
            # Pool sized for the thread pool plus the lease keeper and sweeps.
            database = Database(
                settings.app_database_url,
                prepared_statements=settings.db_prepared_statements,
                pool_size=10,
                max_overflow=10,
            )
            client = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
            loaded = boot.start(settings, database, dispatcher=CeleryDispatcher(app))
            telemetry.install(client)
            # A worker's thread takes its next message once its outcome is handed to the
            # writer (fusion/jobs/write_behind.py); shutdown() writes what is left.
            engine = Engine(settings, database, redis=client, write_behind=True)
            engine.start()
            log.info("worker %s ready; job modules: %s", engine.worker_id, ", ".join(loaded))
            _runtime = Runtime(settings, database, client, engine, os.getpid())
    return _runtime


def shutdown() -> None:
    """A graceful stop of this process's runtime, if it was built here: the outcomes handed
    to the writer are written, then the leases stop being renewed."""
    global _runtime
    with _lock:
        built, _runtime = _runtime, None
    if built is not None and built.pid == os.getpid():
        built.engine.stop()
