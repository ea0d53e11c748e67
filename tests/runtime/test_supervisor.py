"""The supervisor restarts a child that dies, with a back-off, and leaves the others alone."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

from fusion.runtime.supervisor import RESTART_BACKOFF_S, Service, Supervisor


def test_a_child_that_dies_is_restarted_with_backoff_and_the_others_keep_running(
    tmp_path: Path,
) -> None:
    # Given a steady child and one that dies half a second after every start
    starts = tmp_path / "starts"
    record_then_die = (
        f"import time; open({str(starts)!r}, 'a').write('x'); time.sleep(0.5); raise SystemExit(3)"
    )
    flaky = Service("flaky", (sys.executable, "-c", record_then_die))
    steady = Service("steady", (sys.executable, "-c", "import time; time.sleep(60)"))
    out = io.StringIO()
    supervisor = Supervisor([steady, flaky], grace_s=3, out=out)
    # When they run until the flaky one has been started a third time (stopped then by SIGTERM,
    # as Ctrl-C or docker would)
    done = threading.Event()

    def stop_after_third_start() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            if starts.exists() and len(starts.read_text()) >= 3:
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_third_start, daemon=True)
    started = time.monotonic()
    stopper.start()
    try:
        code = supervisor.run()
    finally:
        done.set()
        stopper.join(5)
    elapsed = time.monotonic() - started
    log = out.getvalue()
    # Then the flaky one was restarted each time after a longer wait, saying so
    assert code == 0, log
    assert "flaky exited unexpectedly (code 3); restarting it in 1s (exit 1 in a row)" in log
    assert "flaky exited unexpectedly (code 3); restarting it in 2s (exit 2 in a row)" in log
    assert log.count("restarted flaky") == 2, log
    assert len(starts.read_text()) == 3
    # and the steady one was started once and stopped only at the end
    assert log.count("started steady") == 1
    assert "steady exited" not in log
    # after waiting out the back-offs, 1 s then 2 s
    assert sum(RESTART_BACKOFF_S[:2]) <= elapsed < 30


def test_without_restarts_a_child_that_dies_stops_everything(tmp_path: Path) -> None:
    dies = Service("dies", (sys.executable, "-c", "raise SystemExit(4)"))
    steady = Service("steady", (sys.executable, "-c", "import time; time.sleep(60)"))
    out = io.StringIO()
    code = Supervisor([steady, dies], grace_s=3, out=out, restart=False).run()
    assert code == 1
    assert "dies exited unexpectedly (code 4); stopping" in out.getvalue()
