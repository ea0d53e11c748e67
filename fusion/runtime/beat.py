"""One beat, whatever happens: a lease in Redis that only its holder renews, and a heartbeat
file that says when a beat last ran.

Two beat processes started by mistake (a second ``docker compose up``, a scaled service, a
forgotten terminal) would otherwise both send every periodic task. Each beat tries to take or
renew the lease on every tick; only the holder sends the schedule. A holder that dies stops
renewing and its lease expires after ``ttl_s``, then a standby takes over. Redis being away
counts as not holding the lease: nothing can be sent then anyway.

The heartbeat is per process (a file in the beat's own ``FUSION_HOME``, its volume in
docker-compose) so that a healthcheck proves *this* beat is ticking, holder or standby.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEASE_KEY = "fusion:beat:lease"
HEARTBEAT_FILE = "beat-heartbeat.json"
SCHEDULE_FILE = "celerybeat-schedule"

# Take the lease when it is free, renew it when it is ours; 1 if held afterwards, else 0.
_TAKE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
elseif not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """A holder name unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class BeatLease:
    """The Redis lease a beat must hold to send the schedule."""

    def __init__(self, client: Any, *, ttl_s: float, token: str | None = None) -> None:
        self.client = client
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = token or new_token()

    def hold(self) -> bool:
        """Take the lease if free, renew it if ours; False if another beat holds it.

        Raises the client's error when Redis cannot be reached (the caller decides how to
        wait); never takes a lease another live holder renews.
        """
        return bool(self.client.eval(_TAKE_OR_RENEW, 1, LEASE_KEY, self.token, self.ttl_ms))

    def holder(self) -> str | None:
        """Who holds the lease now, or None (also when Redis cannot be reached)."""
        try:
            value = self.client.get(LEASE_KEY)
        except Exception:  # only for a log line: any failure means unknown
            return None
        return value.decode() if isinstance(value, bytes) else value

    def release(self) -> None:
        """Give the lease up if ours, so a standby takes over at once; errors are ignored
        (the lease then simply expires)."""
        with contextlib.suppress(Exception):  # best effort on the way out
            self.client.eval(_RELEASE, 1, LEASE_KEY, self.token)


@dataclass(frozen=True)
class Heartbeat:
    """What a beat wrote on its last tick."""

    at: float  # seconds since the epoch
    pid: int
    holder: bool

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.at


def heartbeat_path(home: Path) -> Path:
    return home / HEARTBEAT_FILE


def write_heartbeat(path: Path, *, holder: bool) -> None:
    """Record that this beat ticked now; written whole (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"at": time.time(), "pid": os.getpid(), "holder": holder}))
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The last heartbeat written at ``path``, or None if there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
        return Heartbeat(at=float(data["at"]), pid=int(data["pid"]), holder=bool(data["holder"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
