"""A small process supervisor: run named children, prefix their output, stop them all together.

Each child runs in its own process group, so a terminal's Ctrl-C reaches only the supervisor,
which then stops every child in an orderly way (TERM to the whole group, KILL after a grace
period). A child that exits on its own is restarted after a back-off (1 s, doubling to 30 s,
back to 1 s once it has run for a minute), and the log says so; the others keep running. With
``restart=False`` such an exit stops everything instead, with a non-zero exit code.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Seconds before restarting a child that exited on its own: its n-th exit in a row waits the
# n-th figure (the last one repeats). A child that ran for RESTART_STABLE_S starts over.
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RESTART_STABLE_S = 60.0
PREFIX_WIDTH = 7  # fits every name fusion up uses, so its own lines line up with the children's
_PR_SET_PDEATHSIG = 1
_libc: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when its parent dies.

    A safety net for a supervisor killed with SIGKILL: its children still stop instead of
    lingering. Linux ties this to the thread that forked, so spawn from a long-lived thread
    (the main one). Elsewhere it does nothing.
    """

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def prefixed(name: str, line: str, width: int = PREFIX_WIDTH) -> str:
    """``line`` behind its source's name, as the supervisor prints it."""
    return f"{name.ljust(width)} | {line}"


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a process group, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class Service:
    """One long-running child: its name (the output prefix), command line, extra env, and the
    variables of the supervisor's env it must not get (``withheld``, e.g. secrets)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    withheld: tuple[str, ...] = ()


@dataclass
class _Child:
    service: Service
    proc: subprocess.Popen[bytes]
    reader: threading.Thread
    started_at: float = field(default_factory=time.monotonic)
    exits: int = 0  # exits in a row without a stable run between them
    restart_at: float | None = None  # set while waiting out the back-off


class Supervisor:
    """Runs a list of services until a stop signal or until one of them exits."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        env: Mapping[str, str] | None = None,
        grace_s: float = 10.0,
        out: IO[str] | None = None,
        restart: bool = True,
    ) -> None:
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        self.services = list(services)
        self.env = dict(os.environ if env is None else env)
        self.grace_s = grace_s
        self.restart = restart
        self.out = out or sys.stdout
        self._width = max([PREFIX_WIDTH, *(len(n) for n in names)])
        self._write_lock = threading.Lock()
        self._children: list[_Child] = []
        self._stop_requested = threading.Event()
        self._signals_seen = 0

    def say(self, line: str, *, name: str = "fusion") -> None:
        """Write one prefixed line to the shared output."""
        with self._write_lock:
            self.out.write(prefixed(name, line, self._width) + "\n")
            self.out.flush()

    def run(self, *, on_started: Callable[[], None] | None = None) -> int:
        """Start every service, wait, stop them all; return 0 on a requested stop, else 1.

        ``on_started`` is called once every service has been started. A stop is requested by
        SIGINT, SIGTERM or SIGHUP (a second one skips the grace period). If a service cannot
        be started, the others are stopped and the result is 1; one that exits on its own is
        restarted after its back-off (or, with ``restart=False``, the others are stopped and
        the result is 1). Every child and its process group is gone when this returns.
        """
        with self._stop_signals_handled():
            failed = False
            try:
                for service in self.services:
                    if self._stop_requested.is_set():
                        break
                    self._children.append(self._spawn(service))
            except OSError as exc:
                self.say(f"could not start {service.name}: {exc}")
                failed = True
            if not failed:
                if on_started is not None and not self._stop_requested.is_set():
                    on_started()
                failed = self._wait_for_stop_or_exit()
            self._stop_all()
        return 1 if failed else 0

    def _spawn(self, service: Service, *, restarted: bool = False) -> _Child:
        env = {**self.env, **service.env, "PYTHONUNBUFFERED": "1"}
        for name in service.withheld:
            env.pop(name, None)
        proc = subprocess.Popen(
            service.argv,
            env=env,
            cwd=service.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        reader = threading.Thread(
            target=self._pump, args=(service.name, proc), name=f"out-{service.name}", daemon=True
        )
        reader.start()
        self.say(f"{'restarted' if restarted else 'started'} {service.name} (pid {proc.pid})")
        return _Child(service, proc, reader)

    def _pump(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self.say(raw.decode(errors="replace").rstrip("\r\n"), name=name)
        proc.stdout.close()

    def _wait_for_stop_or_exit(self) -> bool:
        while not self._stop_requested.wait(0.2):
            for index, child in enumerate(self._children):
                if child.restart_at is not None:
                    if time.monotonic() >= child.restart_at:
                        self._children[index] = self._restart(child)
                    continue
                code = child.proc.poll()
                if code is None:
                    continue
                name = child.service.name
                if not self.restart:
                    self.say(f"{name} exited unexpectedly (code {code}); stopping")
                    return True
                # Whatever the dead leader left in its group goes with it.
                signal_group(child.proc.pid, signal.SIGKILL)
                if time.monotonic() - child.started_at >= RESTART_STABLE_S:
                    child.exits = 0
                delay = RESTART_BACKOFF_S[min(child.exits, len(RESTART_BACKOFF_S) - 1)]
                child.exits += 1
                child.restart_at = time.monotonic() + delay
                self.say(
                    f"{name} exited unexpectedly (code {code}); restarting it in {delay:g}s "
                    f"(exit {child.exits} in a row)"
                )
        return False

    def _restart(self, child: _Child) -> _Child:
        """``child``'s service started again, keeping its count of exits in a row; if it
        cannot be started, the next try waits the next back-off."""
        child.reader.join(timeout=2)
        try:
            fresh = self._spawn(child.service, restarted=True)
        except OSError as exc:
            delay = RESTART_BACKOFF_S[min(child.exits, len(RESTART_BACKOFF_S) - 1)]
            child.exits += 1
            child.restart_at = time.monotonic() + delay
            self.say(f"could not restart {child.service.name}: {exc}; trying in {delay:g}s")
            return child
        fresh.exits = child.exits
        return fresh

    def _stop_all(self) -> None:
        running = [c for c in self._children if c.proc.poll() is None]
        if running:
            self.say("stopping " + ", ".join(c.service.name for c in running))
        for child in self._children:
            # The whole group: gunicorn and celery leave workers of their own.
            signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in self._children:
            while child.proc.poll() is None and time.monotonic() < deadline:
                if self._signals_seen > 1:  # asked twice: no more patience
                    break
                time.sleep(0.05)
        for child in self._children:
            if child.proc.poll() is None:
                self.say(f"{child.service.name} did not stop in {self.grace_s:g}s; killing it")
            # KILL the group even when the leader has exited, for any straggler it left.
            signal_group(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            child.reader.join(timeout=2)
            self.say(f"{child.service.name} stopped (code {child.proc.returncode})")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        self._stop_requested.set()

    @contextlib.contextmanager
    def _stop_signals_handled(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
