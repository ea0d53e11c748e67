"""``fusion worker`` and ``fusion beat``: thin wrappers that exec ``celery -A workers.app``,
and the healthchecks of both (``fusion worker --ping``, ``fusion beat --check``)."""

from __future__ import annotations

import os
import socket
import sys

import click

from fusion.config import Settings
from fusion.jobs.queues import ALL_QUEUES, DEFAULT_QUEUE
from fusion.runtime.beat import SCHEDULE_FILE, heartbeat_path, read_heartbeat

# Plugin work waits on marketplace HTTP calls: threads, sized for latency, not cores.
DEFAULT_CONCURRENCY = 8
PING_TIMEOUT_S = 5.0


def _exec(args: list[str]) -> None:
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", *args]
    # Replace this process so signals from a supervisor reach celery directly.
    os.execv(argv[0], argv)  # noqa: S606


def node_name(platform: str, host: str | None = None) -> str:
    """The Celery node name of ``fusion worker --platform PLATFORM`` on ``host`` (this one):
    what its healthcheck pings."""
    name = "all" if platform == "all" else platform or DEFAULT_QUEUE
    return f"{name}@{host or socket.gethostname()}"


@click.command()
@click.option(
    "--platform",
    "platform",
    required=True,
    type=click.Choice([*ALL_QUEUES, "all"]),
    help="The queue to serve: a platform, 'default' (webhooks, approvals, housekeeping), or 'all'.",
)
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=DEFAULT_CONCURRENCY)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--ping",
    is_flag=True,
    help="Do not start a worker: ask this host's worker of PLATFORM for a Celery ping and "
    "exit 0 if it answers (a healthcheck).",
)
def worker(platform: str, concurrency: int, loglevel: str, ping: bool) -> None:
    """Run one worker pool (Celery, threads) on one platform's queue."""
    if ping:
        _exec(["inspect", "ping", "--timeout", str(PING_TIMEOUT_S), "-d", node_name(platform)])
    queues = ",".join(ALL_QUEUES) if platform == "all" else platform
    _exec(
        [
            "worker",
            "--queues",
            queues,
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--hostname",
            node_name(platform, "%h"),
            # Gossip and mingle only share state between workers, which the hub does not use
            # (Postgres is the record); their bootsteps are what broke a worker's reconnect
            # after a broker restart ("Error on stopping Gossip", then an AttributeError).
            # Heartbeats stay: Flower shows workers online by them.
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            loglevel,
        ]
    )


@click.command()
@click.option(
    "--schedule",
    default=None,
    help="Where beat keeps its state file (default: FUSION_HOME/celerybeat-schedule).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--check",
    is_flag=True,
    help="Do not start beat: exit 0 if this home's beat ticked within --max-age (a healthcheck).",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0.1),
    default=None,
    help="For --check: the oldest heartbeat that passes, in seconds (default: twice "
    "FUSION_BEAT_LEASE_TTL_S).",
)
def beat(schedule: str | None, loglevel: str, check: bool, max_age: float | None) -> None:
    """Run celery beat: the sweeps every few seconds and the recurring syncs.

    Only the beat holding the lease in Redis sends anything; a second one stands by.
    """
    settings = Settings.from_env()
    if check:
        _check_beat(settings, max_age if max_age is not None else 2 * settings.beat_lease_ttl_s)
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    _exec(
        [
            "beat",
            "--loglevel",
            loglevel,
            "--schedule",
            schedule or str(settings.home / SCHEDULE_FILE),
        ]
    )


def _check_beat(settings: Settings, max_age_s: float) -> None:
    path = heartbeat_path(settings.home)
    beat_seen = read_heartbeat(path)
    if beat_seen is None:
        click.echo(f"beat: no heartbeat at {path}", err=True)
        sys.exit(1)
    age = beat_seen.age_s()
    role = "holds the lease" if beat_seen.holder else "standing by"
    if age > max_age_s:
        click.echo(f"beat: last tick {age:.1f}s ago (more than {max_age_s:g}s); stale", err=True)
        sys.exit(1)
    click.echo(f"beat: ticked {age:.1f}s ago (pid {beat_seen.pid}, {role})")
