"""``fusion worker`` and ``fusion beat``: thin wrappers that exec ``celery -A workers.app``."""

from __future__ import annotations

import os
import sys

import click

from fusion.jobs.queues import ALL_QUEUES, DEFAULT_QUEUE

# Plugin work waits on marketplace HTTP calls: threads, sized for latency, not cores.
DEFAULT_CONCURRENCY = 8


def _exec(args: list[str]) -> None:
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", *args]
    # Replace this process so signals from a supervisor reach celery directly.
    os.execv(argv[0], argv)  # noqa: S606


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
def worker(platform: str, concurrency: int, loglevel: str) -> None:
    """Run one worker pool (Celery, threads) on one platform's queue."""
    queues = ",".join(ALL_QUEUES) if platform == "all" else platform
    name = "all" if platform == "all" else platform or DEFAULT_QUEUE
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
            f"{name}@%h",
            "--loglevel",
            loglevel,
        ]
    )


@click.command()
@click.option("--schedule", default=None, help="Where beat keeps its state file.")
@click.option("--loglevel", default="INFO", show_default=True)
def beat(schedule: str | None, loglevel: str) -> None:
    """Run celery beat: the sweeps every few seconds and the recurring syncs. Run one only."""
    args = ["beat", "--loglevel", loglevel]
    if schedule:
        args += ["--schedule", schedule]
    _exec(args)
