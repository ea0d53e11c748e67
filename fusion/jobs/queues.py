"""Queue names: one Celery queue per platform, plus ``default`` for everything store-less."""

from __future__ import annotations

PLATFORM_QUEUES = ("shopify", "etsy", "amazon_sc", "printify")
DEFAULT_QUEUE = "default"
ALL_QUEUES = (*PLATFORM_QUEUES, DEFAULT_QUEUE)


def queue_for(platform: str | None) -> str:
    """The queue that carries a job for a store of ``platform``.

    A job without a store, or for a platform without a queue of its own (a third-party
    plugin), goes to ``default``; this never raises.
    """
    if platform in PLATFORM_QUEUES:
        return platform
    return DEFAULT_QUEUE
