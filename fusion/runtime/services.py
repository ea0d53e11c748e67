"""The child processes ``fusion up`` runs: API, event streams, one worker on every queue, beat,
Flower, sandboxes.

Each child is started with the current interpreter (``python -m ...``) so it uses the same
environment as ``fusion up`` itself, and reads its settings from the ``FUSION_*`` variables
the supervisor passes down (see :func:`child_env`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from fusion.config import VARIABLES, Settings
from fusion.runtime import extras
from fusion.runtime.supervisor import Service

API_WORKERS = 2
API_THREADS = 4
# gunicorn's worker classes (api/serving.py, api/green.py): problem+json error pages; the
# streams' is gevent, so a waiting stream holds a greenlet, never one of the API's threads.
API_WORKER_CLASS = "api.serving.ApiWorker"
STREAMS_WORKER_CLASS = "api.green.StreamWorker"
STREAMS_WORKERS = 1
STREAMS_CONNECTIONS = 1000  # per worker; far above the per-org and per-caller caps
# Shorter than the supervisor's grace period so gunicorn finishes its own shutdown first.
API_GRACEFUL_TIMEOUT_S = 5
# `fusion ...` with this interpreter, whether or not the console script is on PATH.
_RUN_CLI = "import sys; from fusion.cli.main import cli; sys.exit(cli(prog_name='fusion'))"
# What a broker-only child (Flower) never gets in its environment: it talks to Redis alone.
BROKER_ONLY_WITHHELD = tuple(
    VARIABLES[name]
    for name in (
        "jwt_secret",
        "encryption_keys",
        "database_url",
        "app_database_url",
        "app_db_password",
    )
)


def http_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def api_server_command(python: str, app: str, bind: str) -> tuple[str, ...]:
    """gunicorn serving the WSGI ``app`` on ``bind`` as the API is served (worker class,
    processes, threads, access log); bench/api.py serves its hello-world baseline with it."""
    return (
        python, "-m", "gunicorn", app,
        "--bind", bind,
        "--worker-class", API_WORKER_CLASS,
        "--workers", str(API_WORKERS), "--threads", str(API_THREADS),
        "--graceful-timeout", str(API_GRACEFUL_TIMEOUT_S),
        # The default control socket is one per user: two hubs would fight over it.
        "--no-control-socket",
        "--access-logfile", "-",
    )  # fmt: skip


def child_env(settings: Settings) -> dict[str, str]:
    """The ``FUSION_*`` variables that point every child at the same home and servers."""
    env = {
        "FUSION_HOME": str(settings.home),
        "FUSION_API_HOST": settings.api_host,
        "FUSION_API_PORT": str(settings.api_port),
        "FUSION_FLOWER_PORT": str(settings.flower_port),
        "FUSION_STREAMS_PORT": str(settings.streams_port),
    }
    # Outside production the platforms are the local sandboxes, which reach the API directly:
    # connecting a store subscribes it to order webhooks at the API's own address.
    public_url = settings.public_url
    if public_url is None and settings.env != "production":
        public_url = f"http://{settings.api_host}:{settings.api_port}"
    for name, value in (
        ("FUSION_DATABASE_URL", settings.database_url),
        ("FUSION_APP_DATABASE_URL", settings.app_database_url),
        ("FUSION_REDIS_URL", settings.redis_url),
        ("FUSION_PUBLIC_URL", public_url),
    ):
        if value:
            env[name] = value
    return env


def hub_services(
    settings: Settings, *, note: Callable[[str], None] = print, python: str = sys.executable
) -> list[Service]:
    """The services of ``fusion up`` for ``settings``, in start order.

    The worker and beat go through ``fusion worker`` / ``fusion beat`` so that they run as
    they do in production. The sandboxes (``fusion sandbox``, which prints the ports it serves)
    are included when the sandbox extra is installed; otherwise ``note`` is told they are skipped.
    """
    fusion = (python, "-c", _RUN_CLI)
    beat_state = str(settings.home / "celerybeat-schedule")
    services = [
        Service(
            "api",
            api_server_command(
                python, "api.wsgi:app", http_address(settings.api_host, settings.api_port)
            ),
        ),
        Service(
            "streams",
            (
                python, "-m", "gunicorn", "api.streams_wsgi:app",
                "--bind", http_address(settings.api_host, settings.streams_port),
                "--worker-class", STREAMS_WORKER_CLASS,
                "--workers", str(STREAMS_WORKERS),
                "--worker-connections", str(STREAMS_CONNECTIONS),
                "--graceful-timeout", str(API_GRACEFUL_TIMEOUT_S),
                "--no-control-socket",
                "--access-logfile", "-",
            ),
        ),
        # In dev one worker takes every queue; production runs one per queue.
        Service("worker", (*fusion, "worker", "--platform", "all")),
        # Beat's state lives with the rest of the hub's, not in the current directory.
        Service("beat", (*fusion, "beat", "--schedule", beat_state)),
        # Broker-only: an app of celeryconfig alone, and no secret in its environment.
        Service(
            "flower",
            (
                python, "-m", "celery", "-A", "workers.flower", "flower",
                "--address=127.0.0.1", f"--port={settings.flower_port}",
            ),
            withheld=BROKER_ONLY_WITHHELD,
        ),
    ]  # fmt: skip
    if extras.missing("sandbox"):
        note(f"sandboxes skipped: no sandbox extra ({extras.install_command('sandbox')})")
    else:
        services.append(Service("sandbox", (*fusion, "sandbox")))
    return services
