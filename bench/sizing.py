"""Worker counts per queue for an order and SKU volume, from the benches' figures.

    .venv/bin/python bench/sizing.py

Reads bench/results/engine.json (the engine's own cost per job) and
bench/results/rate_limits.json (what one store of each platform takes per second at its
default limits) and prints the sizing table of docs/running.md ("Sizing the workers"), which
tests/deploy/test_kubernetes.py holds equal to this script's output. The arithmetic, per
platform queue p, for O orders/h of L lines and K other SKU changes/h (imports, edits), each
SKU listed on one store of every platform, and no coalescing (the worst case):

- push jobs/s  J_p = O/3600 (one push per order and store) + K/3600/10 (10 SKUs per job);
- SKU pushes/s U_p = (O*L + K)/3600;
- calls/s      C_p = U_p * calls per SKU (rate_limits.json: requests / updates);
- order jobs/s W_p = O/3600/4: each order's process_webhook runs on the queue of the store it
  came from (fusion/webhooks/service.py ``record``), the orders spread evenly over the four
  platforms; each costs twice the engine's per-job cost (the job, and the order's own
  transaction) plus one platform call where the event needs a lookup (Printify, Amazon);
- busy threads T_p = C_p * CALL_LATENCY_S + J_p * engine seconds per job (engine.json)
                     + W_p * (2 * engine seconds per job + lookup call);
- pods         ceil(T_p / (threads per pod * TARGET_UTILISATION)), at least 1.

The default queue runs no per-order work any more (the sweeps, beat's fan-outs, approvals):
one pod, whatever the volume.

One store's ceiling comes from its rate limit alone (workers do not raise it): rate * (1 -
safety margin) / cost per SKU, the cost read from the bench (requests per SKU; Shopify: cost
points per SKU = utilisation * (burst + rate * elapsed) / updates).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# Assumptions, not measurements (the benches' sandboxes answer on loopback in ~1 ms).
CALL_LATENCY_S = 0.25  # one marketplace API call, as seen from a worker thread
LINES_PER_ORDER = 2
THREADS_PER_POD = 8  # fusion worker's default --concurrency
TARGET_UTILISATION = 0.7  # headroom for bursts and inline rate-limit waits (up to 2 s)
SAFETY_MARGIN = 0.05  # the hub's token buckets stay 5 % under the platform (docs/plugins.md)
# Platforms whose order events need a platform call before processing (Printify's names only
# the order, Amazon's lacks the prices).
LOOKUP_PLATFORMS = frozenset({"amazon_sc", "printify"})
SKUS_PER_BULK_JOB = 10
# The sandboxes' default limits the rate-limit bench ran against (bench/rate_limits.py's
# ALLOWED; Shopify: fusion/sandbox/shopify.py), (rate per second, burst) in the unit counted.
LIMITS = {
    "shopify": (50.0, 1000.0),  # cost points
    "etsy": (10.0, 10.0),
    "amazon_sc": (5.0, 10.0),
    "printify": (10.0, 10.0),
}
PLATFORMS = tuple(LIMITS)
SCENARIOS = (  # (orders per hour, other SKU changes per hour), hub-wide
    (1_000, 10_000),
    (10_000, 100_000),
    (50_000, 500_000),
    (200_000, 2_000_000),
)


def load() -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    engine = json.loads((RESULTS / "engine.json").read_text(encoding="utf-8"))
    limits = json.loads((RESULTS / "rate_limits.json").read_text(encoding="utf-8"))
    return engine, limits


def engine_s_per_job(engine: dict[str, float]) -> float:
    """Thread-seconds the engine spends on one job with a message of its own (urgent and
    normal lanes, what orders and pushes ride): busy threads / jobs per second."""
    return (
        engine["workers"] * engine["concurrency"] / engine["engine_jobs_per_s_one_message_per_job"]
    )


def calls_per_sku(limits: dict[str, dict[str, float]], platform: str) -> float:
    row = limits[platform]
    return row["requests"] / row["updates"]


def store_skus_per_s(limits: dict[str, dict[str, float]], platform: str) -> float:
    """SKU changes per second one store takes at its default limit, steady state."""
    row = limits[platform]
    rate, burst = LIMITS[platform]
    if platform == "shopify":  # the bucket counts cost points, not requests
        cost = row["utilisation"] * (burst + rate * row["elapsed_s"]) / row["updates"]
    else:
        cost = calls_per_sku(limits, platform)
    return rate * (1 - SAFETY_MARGIN) / cost


def pods(threads: float) -> int:
    return max(1, math.ceil(threads / (THREADS_PER_POD * TARGET_UTILISATION)))


def plan(orders_h: float, skus_h: float) -> dict[str, tuple[float, int]]:
    """Busy threads and pods per queue for ``orders_h`` orders and ``skus_h`` SKU changes."""
    engine, limits = load()
    per_job = engine_s_per_job(engine)
    out: dict[str, tuple[float, int]] = {}
    for p in PLATFORMS:
        jobs = orders_h / 3600 + skus_h / 3600 / SKUS_PER_BULK_JOB
        calls = (orders_h * LINES_PER_ORDER + skus_h) / 3600 * calls_per_sku(limits, p)
        orders = orders_h / 3600 / len(PLATFORMS)
        threads = calls * CALL_LATENCY_S + jobs * per_job + orders * webhook_s(per_job, p)
        out[p] = (threads, pods(threads))
    out["default"] = (0.0, pods(0.0))
    return out


def webhook_s(per_job: float, platform: str) -> float:
    """Thread-seconds of one order's process_webhook on ``platform``'s queue."""
    return 2 * per_job + (CALL_LATENCY_S if platform in LOOKUP_PLATFORMS else 0.0)


def table() -> str:
    """The markdown of docs/running.md's sizing tables."""
    engine, limits = load()
    lines = [
        "| platform | calls per SKU | one store takes (SKU changes/s) | per hour |",
        "|---|---|---|---|",
    ]
    for p in PLATFORMS:
        per_s = store_skus_per_s(limits, p)
        cost = calls_per_sku(limits, p)
        lines.append(f"| `{p}` | {cost:.2f} | {per_s:.1f} | {per_s * 3600:,.0f} |")
    lines += [
        "",
        f"Engine cost per job: {engine_s_per_job(engine) * 1000:.1f} ms of a worker thread "
        f"({engine['workers']} x {engine['concurrency']} threads / "
        f"{engine['engine_jobs_per_s_one_message_per_job']} jobs/s).",
        "",
        "| orders/h | other SKU changes/h | "
        + " | ".join(f"`{q}`" for q in (*PLATFORMS, "default"))
        + " |",
        "|---|---|" + "---|" * (len(PLATFORMS) + 1),
    ]
    for orders_h, skus_h in SCENARIOS:
        row = plan(orders_h, skus_h)
        cells = [f"{row[q][1]} ({row[q][0]:.1f})" for q in (*PLATFORMS, "default")]
        lines.append(f"| {orders_h:,} | {skus_h:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
