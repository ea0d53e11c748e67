"""The sweeps' per-run chatter (every few seconds, on every worker and beat) is filtered from
the logs; their warnings and everything about other tasks pass."""

from __future__ import annotations

import logging

from workers.app import QuietSweeps


def _record(level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("celery", level, __file__, 1, message, args, None)


def test_sweep_chatter_is_dropped_and_everything_else_passes() -> None:
    quiet = QuietSweeps()
    assert not quiet.filter(_record(logging.INFO, "Task %s[%s] received", "fusion.sweep.reap", "1"))
    assert not quiet.filter(
        _record(
            logging.INFO,
            "Scheduler: Sending due task %s (%s)",
            "dispatch-due-jobs",
            "fusion.sweep.dispatch_due",
        )
    )
    assert quiet.filter(_record(logging.WARNING, "Task %s raised: boom", "fusion.sweep.reap"))
    assert quiet.filter(_record(logging.INFO, "Task %s[%s] received", "fusion.run_job", "2"))
    assert quiet.filter(_record(logging.INFO, "reaped: %s", {"pending": 1}))
