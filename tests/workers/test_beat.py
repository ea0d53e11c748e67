"""One beat, whatever happens: two ``fusion beat`` processes on one broker send the schedule
once, the standby takes over when the holder is killed, and ``fusion beat --check`` tells a
ticking beat from a dead one. Real processes, a private Redis for this test alone (its
queues are counted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from tests.support.servers import RedisServer
from tests.support.workers import ROOT
from tests.workers.conftest import wait_until

pytestmark = pytest.mark.slow

LEASE_TTL_S = 3
SWEEP_S = 1.0
# Two interval entries every SWEEP_S (reaper and dispatcher); the crontab entries may add one
# or two at a minute boundary. One sender over WINDOW_S sends at most this many messages.
WINDOW_S = 8.0
ONE_SENDER_MAX = int(2 * (WINDOW_S / SWEEP_S + 1)) + 4
ONE_SENDER_MIN = int(2 * (WINDOW_S / SWEEP_S - 2))
RUN_CLI = "import sys; from fusion.cli.main import cli; sys.exit(cli(prog_name='fusion'))"


class Beat:
    def __init__(self, name: str, env: dict[str, str], tmp: Path) -> None:
        self.home = tmp / name
        self.home.mkdir()
        self.env = {**env, "FUSION_HOME": str(self.home)}
        self.log = tmp / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUN_CLI, "beat"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check(self, max_age: float = 2.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", RUN_CLI, "beat", "--check", "--max-age", str(max_age)],
            env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def holds(self) -> bool:
        result = self.check()
        return result.returncode == 0 and "holds the lease" in result.stdout

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def sent(client: redis_lib.Redis) -> int:
    """Messages waiting in every queue (no worker runs: each one beat sent stays)."""
    total = 0
    for key in client.scan_iter():
        if client.type(key) == b"list":
            total += int(client.llen(key))
    return total


def sent_over(client: redis_lib.Redis, seconds: float) -> int:
    before = sent(client)
    time.sleep(seconds)
    return sent(client) - before


def test_two_beats_send_the_schedule_once_and_the_standby_takes_over_from_a_dead_holder(
    worker_env: dict[str, str], broker: RedisServer, tmp_path: Path
) -> None:
    env = {
        **worker_env,
        "FUSION_REDIS_URL": broker.url,
        "FUSION_BEAT_LEASE_TTL_S": str(LEASE_TTL_S),
        "FUSION_SWEEP_INTERVAL_S": str(SWEEP_S),
        "FUSION_ORDER_QUEUE_POLL_S": "0",
    }
    client = redis_lib.Redis.from_url(broker.url)
    first = Beat("beat-a", env, tmp_path)
    second = Beat("beat-b", env, tmp_path)
    beats = [first, second]
    try:
        # Given two beats started by mistake on the same broker, both ticking
        wait_until(lambda: first.check().returncode == 0 and second.check().returncode == 0, 60)
        wait_until(lambda: first.holds() or second.holds(), 30)
        holder, standby = (first, second) if first.holds() else (second, first)
        assert not standby.holds()
        assert "standing by" in standby.check().stdout

        # When the schedule runs for a while, then it is sent by one of them only
        both_running = sent_over(client, WINDOW_S)
        assert ONE_SENDER_MIN <= both_running <= ONE_SENDER_MAX, both_running
        assert "holding the beat lease" in holder.output()
        assert "holding the beat lease" not in standby.output()
        assert "another beat holds the lease" in standby.output()

        # When the holder dies without a word (SIGKILL: it cannot release the lease)
        holder.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        # Then the standby takes over within the lease's life (plus one recheck and the
        # time the check command itself takes)
        wait_until(standby.holds, LEASE_TTL_S + 10, every=0.2)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s <= LEASE_TTL_S + 10
        assert "holding the beat lease" in standby.output()
        # and it sends the schedule as the holder did, once
        after = sent_over(client, WINDOW_S)
        assert ONE_SENDER_MIN <= after <= ONE_SENDER_MAX, after
        # and the dead beat's healthcheck fails, its heartbeat going stale
        stale = holder.check(max_age=2.0)
        assert stale.returncode == 1 and "stale" in stale.stderr
        print(f"one beat sent {both_running} in {WINDOW_S:g}s; takeover after {takeover_s:.1f}s")
    finally:
        for beat in beats:
            beat.stop()
        client.close()


def test_beat_check_fails_where_no_beat_ever_ran(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    env["FUSION_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "beat", "--check"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no heartbeat" in result.stderr
