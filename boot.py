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
import fusion.models  # noqa: F401
import schemas.catalog_jobs
import schemas.jobs
import schemas.notifications
import schemas.onboarding_jobs
import schemas.order_jobs
import schemas.plugin_jobs
import schemas.webhook_jobs
from fusion import logs
from fusion.auth import passwords
from fusion.catalog import jobs as catalog_jobs
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError
from fusion.inventory import jobs as inventory_jobs
from fusion.jobs import dispatch, registry
from fusion.jobs.dispatch import Dispatcher
from fusion.notifications import jobs as notification_jobs
from fusion.onboarding import jobs as onboarding_jobs
from fusion.orders import jobs as order_jobs
from fusion.plugins.sync import sync_plugins
from fusion.webhooks import jobs as webhook_jobs

log = logging.getLogger(__name__)

# The hub's own job modules (each domain's jobs.py) and their payload schemas: imported
# above, so their arrows are in the import graph; importing registers them.
JOB_MODULES = (
    catalog_jobs,
    inventory_jobs,
    notification_jobs,
    order_jobs,
    onboarding_jobs,
    webhook_jobs,
)
PAYLOAD_SCHEMA_MODULES = (
    schemas.catalog_jobs,
    schemas.notifications,
    schemas.onboarding_jobs,
    schemas.order_jobs,
    schemas.plugin_jobs,
    schemas.webhook_jobs,
)


def start(settings: Settings, database: Database, *, dispatcher: Dispatcher) -> list[str]:
    """Everything a hub process needs before its first request or job, in one order.

    from fusion import logs
    from fusion.auth import passwords
        built-in ones and ``settings.job_modules``) and their payload schemas, syncs the plugin
        contracts, and makes ``dispatcher`` the publisher of every enqueue. Returns the job modules
        imported. Raises whatever importing a named job module raises (a typo must not go
        unnoticed); a failed plugin sync is only logged: the plugin tables then lag until the next
        start (or ``fusion plugins sync``), which must not keep the process from serving.
    """
    logs.configure(settings.log_format)
    passwords.limit_concurrency(settings.password_hash_concurrency)
    loaded = load_jobs(settings.job_modules)
    _sync_plugin_contracts(database)
    dispatch.install(dispatcher)
    return loaded


def load_jobs(extensions: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Register the hub's job types and the ``extensions`` modules' (``FUSION_JOB_MODULES``),
    install the payload validator, and check that every registered type has a payload schema;
    returns the job modules. Raises ConfigError naming the types without a schema."""
    loaded = [m.__name__ for m in JOB_MODULES] + registry.load_job_modules(extensions)
    schemas.jobs.install()
    unchecked = [name for name in registry.all_names() if not schemas.jobs.has_schema(name)]
    if unchecked:
        raise ConfigError(f"job types without a payload schema: {', '.join(unchecked)}")
    return loaded


def _sync_plugin_contracts(database: Database) -> None:
    # The plugins/plugin_contracts tables are global: a system session, no org.
    try:
        with database.system_session() as session:
            synced = sync_plugins(session)
        log.info("plugin contracts synced: %s", ", ".join(r.slug for r in synced))
    except SQLAlchemyError as exc:
        log.warning("plugin contract sync failed: %s", type(exc).__name__)
