"""The one start-up path of a hub process: the API (``api.app.create_app``) and every worker
(``workers.runtime.runtime``) call :func:`start` before their first request or job.

It lives beside ``celeryconfig.py``, outside ``fusion`` (which may not import ``schemas``) and
outside ``api``/``workers`` (which stay apart): each caller hands in its own publisher, so
neither needs the other's start-up code.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

# Every table, so that foreign keys between the domains' models resolve in any process,
# whichever job module is imported first.
import fusion.db.models  # noqa: F401
import schemas.jobs
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import dispatch, registry
from fusion.jobs.dispatch import Dispatcher
from fusion.plugins.sync import sync_plugins
from fusion.security import redact

log = logging.getLogger(__name__)


def start(settings: Settings, database: Database, *, dispatcher: Dispatcher) -> list[str]:
    """Everything a hub process needs before its first request or job, in one order.

    Installs log redaction (before anything can log a secret), imports the job modules (the
    built-in ones and ``settings.job_modules``) and their payload schemas, syncs the plugin
    contracts, and makes ``dispatcher`` the publisher of every enqueue. Returns the job modules
    imported. Raises whatever importing a named job module raises (a typo must not go
    unnoticed); a failed plugin sync is only logged: the plugin tables then lag until the next
    start (or ``fusion plugins sync``), which must not keep the process from serving.
    """
    redact.install()
    loaded = registry.load_job_modules(settings.job_modules)
    schemas.jobs.install()
    _sync_plugin_contracts(database)
    dispatch.install(dispatcher)
    return loaded


def _sync_plugin_contracts(database: Database) -> None:
    # The plugins/plugin_contracts tables are global: a system session, no org.
    try:
        with database.system_session() as session:
            synced = sync_plugins(session)
        log.info("plugin contracts synced: %s", ", ".join(r.slug for r in synced))
    except SQLAlchemyError as exc:
        log.warning("plugin contract sync failed: %s", type(exc).__name__)
