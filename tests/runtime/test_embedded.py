"""Embedded Postgres and Redis: their data survives a restart, and they stay off 5432/6379."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest
import redis
import sqlalchemy as sa

from fusion.config import Settings
from fusion.runtime.embedded import EmbeddedServers
from fusion.runtime.embedded_postgres import EmbeddedPostgres
from fusion.runtime.embedded_process import EmbeddedServerError
from fusion.runtime.embedded_redis import STANDARD_PORTS, EmbeddedRedis


def listening_tcp_ports(pid: int) -> set[tuple[str, int]]:
    conns = psutil.Process(pid).net_connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def unauthenticated_ping(port: int) -> bytes:
    # A raw socket: redis-py would retry an auth failure for seconds before raising.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(256)


def test_postgres_reuses_its_data_dir_and_listens_on_a_socket_only(tmp_path: Path) -> None:
    # given a server started once in a fresh home, with a row written
    first = EmbeddedPostgres(tmp_path)
    url = first.start()
    first_pid = first.pid
    assert first_pid is not None
    try:
        assert listening_tcp_ports(first_pid) == set()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (v text)"))
            conn.execute(sa.text("INSERT INTO kept VALUES ('survives')"))
        engine.dispose()
    finally:
        first.stop()
    assert not psutil.pid_exists(first_pid)
    pg_version = (first.data / "PG_VERSION").stat()

    # when a second handle starts the same home
    second = EmbeddedPostgres(tmp_path)
    try:
        assert second.start() == url
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT v FROM kept")).scalars().all()
        engine.dispose()
    finally:
        second.stop()

    # then it ran on the same data directory, not a new initdb
    assert second.data == first.data
    assert (second.data / "PG_VERSION").stat().st_mtime_ns == pg_version.st_mtime_ns
    assert rows == ["survives"]


def test_redis_keeps_its_data_across_restarts_off_the_standard_port(tmp_path: Path) -> None:
    # given a Redis started once with a key written
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    first_pid, port = first.pid, first.port
    assert first_pid is not None and port is not None
    try:
        assert port not in STANDARD_PORTS
        assert listening_tcp_ports(first_pid) == {("127.0.0.1", port)}
        assert unauthenticated_ping(port).startswith(b"-NOAUTH")  # no password, no access
        redis.Redis.from_url(url).set("k", "survives")
    finally:
        first.stop()
    assert not psutil.pid_exists(first_pid)

    # when it is started again from the same home
    second = EmbeddedRedis(tmp_path)
    try:
        second_url = second.start()
        value = redis.Redis.from_url(second_url).get("k")
    finally:
        second.stop()

    # then the key is still there, on the same (still free) port
    assert second_url == url
    assert value == b"survives"


def test_servers_resolve_settings_and_refuse_a_second_owner(tmp_path: Path) -> None:
    # given settings with no URLs: both servers are embedded
    settings = Settings.from_env({"FUSION_HOME": str(tmp_path)})
    with EmbeddedServers(settings) as resolved:
        # then the resolved URLs pass the config checks and reach the servers
        again = Settings.from_env(
            {
                "FUSION_HOME": str(tmp_path),
                "FUSION_DATABASE_URL": resolved.database_url or "",
                "FUSION_REDIS_URL": resolved.redis_url or "",
            }
        )
        assert again.app_database_url == resolved.app_database_url
        engine = sa.create_engine(again.database_url or "")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        engine.dispose()
        assert redis.Redis.from_url(again.redis_url or "").ping()

        # and a second owner of the same home is refused, leaving the first one running
        with pytest.raises(EmbeddedServerError, match="in use"):
            EmbeddedPostgres(tmp_path).start()
        with pytest.raises(EmbeddedServerError, match="in use"):
            EmbeddedRedis(tmp_path).start()
        assert redis.Redis.from_url(again.redis_url or "").ping()
