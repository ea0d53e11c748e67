"""What the API holds for the life of the process: settings and connections."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis
from flask import current_app

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError


class Serves(enum.StrEnum):
    """Which requests a process answers (docs/running.md)."""

    ALL = "all"  # everything in one process: tests, and an app embedded by hand
    API = "api"  # the API's gunicorn (request threads): every path but the event streams
    STREAMS = "streams"  # the streams process (gevent): the event streams and the probes


@dataclass
class Hub:
    settings: Settings
    database: Database
    redis: redis.Redis
    serves: Serves = Serves.ALL

    @classmethod
    def connect(cls, settings: Settings, serves: Serves = Serves.ALL) -> Hub:
        if not settings.app_database_url:
            raise ConfigError("FUSION_DATABASE_URL: not set (the API needs a database)")
        if not settings.redis_url:
            raise ConfigError("FUSION_REDIS_URL: not set (the API needs the broker)")
        return cls(
            settings=settings,
            database=Database(
                settings.app_database_url, prepared_statements=settings.db_prepared_statements
            ),
            redis=redis.Redis.from_url(
                settings.redis_url, socket_timeout=2, socket_connect_timeout=2
            ),
            serves=serves,
        )


def hub() -> Hub:
    found: Hub = current_app.extensions["fusion"]
    return found
