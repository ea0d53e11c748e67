"""Embedded PostgreSQL and Redis under ``FUSION_HOME``, for ``fusion up`` and for tests.

Layout under the home directory (data is kept and reused on the next start)::

    postgres/data/        PGDATA, made by initdb on the first start only
    postgres/run/         the unix socket (no TCP at all); a short dir under /tmp if too long
    postgres/postgres.log
    redis/                redis.conf (0600), dump.rdb, appendonly.aof, redis.log, port
    secrets/redis_password

Postgres listens on a unix socket only; Redis on 127.0.0.1 on a free port (never 6379) with a
password, because Celery, kombu and Flower all take ``redis://`` URLs but not every one of
them takes a unix socket. Each server is a direct child of the process that started it, in
its own process group, and receives a stop signal if that process dies.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fusion.config import Settings

if TYPE_CHECKING:  # imported when needed: they need the embedded extra (psutil)
    from fusion.runtime.embedded_postgres import EmbeddedPostgres
    from fusion.runtime.embedded_redis import EmbeddedRedis


class EmbeddedServers:
    """Starts the embedded servers a Settings leaves unset, and stops them on exit.

    ``with EmbeddedServers(settings) as resolved:`` gives a Settings whose database and
    Redis URLs point at the servers in use (embedded or as configured). URLs that are set
    are used as they are and nothing is started for them.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Each server's module only when it is embedded: with both URLs set, a production
        # install (no embedded extra) runs `fusion up` too.
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        if settings.database_url is None:
            from fusion.runtime.embedded_postgres import EmbeddedPostgres

            self.postgres = EmbeddedPostgres(settings.home)
        if settings.redis_url is None:
            from fusion.runtime.embedded_redis import EmbeddedRedis

            self.redis = EmbeddedRedis(settings.home)

    def start(self) -> Settings:
        """Start what is needed and return the resolved Settings; on failure stop it all."""
        try:
            db_url = self.postgres.start() if self.postgres else self.settings.database_url
            redis_url = self.redis.start() if self.redis else self.settings.redis_url
        except BaseException:
            self.stop()
            raise
        assert db_url is not None and redis_url is not None
        if self.postgres is None:  # keep a configured app URL as it is
            return dataclasses.replace(self.settings, redis_url=redis_url)
        return self.settings.with_urls(database_url=db_url, redis_url=redis_url)

    @property
    def running(self) -> bool:
        """Whether any server this object started is still running."""
        return any(s is not None and s.pid is not None for s in (self.redis, self.postgres))

    def stop(self) -> None:
        """Stop whatever this object started (Redis first, then Postgres)."""
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
