"""The child processes ``fusion up`` runs: API, one worker on every queue, beat, Flower, sandboxes.

Each child is started with the current interpreter (``python -m ...``) so it uses the same
environment as ``fusion up`` itself, and reads its settings from the ``FUSION_*`` variables
the supervisor passes down (see :func:`child_env`).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

from fusion.config import Settings
from fusion.runtime.supervisor import Service

# Every platform queue plus default: in dev one worker takes them all (DESIGN §4).
ALL_QUEUES = ("shopify", "etsy", "amazon_sc", "printify", "default")
API_WORKERS = 2
API_THREADS = 4
WORKER_THREADS = 8
# Shorter than the supervisor's grace period so gunicorn finishes its own shutdown first.
API_GRACEFUL_TIMEOUT_S = 5
SANDBOX_MODULE = "fusion.sandbox"


def http_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def child_env(settings: Settings) -> dict[str, str]:
    """The ``FUSION_*`` variables that point every child at the same home and servers."""
    env = {
        "FUSION_HOME": str(settings.home),
        "FUSION_API_HOST": settings.api_host,
        "FUSION_API_PORT": str(settings.api_port),
        "FUSION_FLOWER_PORT": str(settings.flower_port),
    }
    for name, value in (
        ("FUSION_DATABASE_URL", settings.database_url),
        ("FUSION_APP_DATABASE_URL", settings.app_database_url),
        ("FUSION_REDIS_URL", settings.redis_url),
    ):
        if value:
            env[name] = value
    return env


def hub_services(
    settings: Settings, *, note: Callable[[str], None] = print, python: str = sys.executable
) -> list[Service]:
    """The services of ``fusion up`` for ``settings``, in start order.

    The sandboxes are included only when ``fusion.sandbox`` can be run as a module
    (``python -m fusion.sandbox``); otherwise ``note`` is told they are skipped.
    """
    celery = (python, "-m", "celery", "-A", "workers.app")
    services = [
        Service(
            "api",
            (
                python, "-m", "gunicorn", "api.wsgi:app",
                "--bind", http_address(settings.api_host, settings.api_port),
                "--workers", str(API_WORKERS), "--threads", str(API_THREADS),
                "--graceful-timeout", str(API_GRACEFUL_TIMEOUT_S),
                # The default control socket is one per user: two hubs would fight over it.
                "--no-control-socket",
                "--access-logfile", "-",
            ),
        ),
        Service(
            "worker",
            (
                *celery, "worker", "--queues", ",".join(ALL_QUEUES),
                "--pool", "threads", "--concurrency", str(WORKER_THREADS),
                "--hostname", "fusion-up@%h", "--loglevel", "INFO",
            ),
        ),
        Service(
            "beat",
            (
                *celery, "beat", "--loglevel", "INFO",
                # Keep beat's state with the rest of the hub's, not in the current directory.
                "--schedule", str(settings.home / "celerybeat-schedule"),
            ),
        ),
        Service(
            "flower",
            (*celery, "flower", "--address=127.0.0.1", f"--port={settings.flower_port}"),
        ),
    ]  # fmt: skip
    if _has_module(f"{SANDBOX_MODULE}.__main__"):
        services.append(Service("sandbox", (python, "-m", SANDBOX_MODULE)))
    else:
        note(f"sandboxes skipped: {SANDBOX_MODULE} has no server entry point yet")
    return services


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
