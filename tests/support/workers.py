"""The environment of worker processes started by a test: the run's FUSION_* settings plus
short leases, sweeps and stale windows, and the test job handlers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAST = {
    "FUSION_JOB_MODULES": "tests.jobs.handlers",
    "FUSION_LEASE_SECONDS": "3",
    "FUSION_SWEEP_INTERVAL_S": "1",
    "FUSION_DISPATCH_STALE_S": "2",
    "FUSION_WORKER_SOFT_SHUTDOWN_S": "0",
    # A beat a test killed holds the shared Redis's beat lease only this long.
    "FUSION_BEAT_LEASE_TTL_S": "3",
}


@pytest.fixture
def worker_env(hub_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSION_")}
    return {**env, **hub_env, **FAST, "PYTHONPATH": str(ROOT)}
