"""The benchmarks' figures as one chart: bench/results/*.json → bench/results/chart.png.

    .venv/bin/python bench/chart.py [--out bench/results/chart.png]

Reads what bench/engine.py (engine.json) and bench/api.py (api.json) last wrote and draws,
each panel beside its target:

1. job throughput: raw Celery, Dramatiq 2 x 8, the engine (bulk messages) and the engine with
   one message per job, in jobs/s (all from one run of bench/engine.py);
2. the engine's ratios: bulk to Dramatiq, one message per job to raw Celery (target 1.0);
3. latencies of the engine: enqueue-to-start p50 / p99 (target p50 10 ms) and rescue of a
   SIGKILLed worker's job (target 10 s);
4. the API: requests/s of each endpoint beside the hello-world of the same method, with
   p99 in the label (targets: POST /jobs at least half the hello-world's rate, p99 25 ms),
   and POST /jobs's floor (its own round trips without the hub's framework, bench/floor_wsgi.py).

A missing results file leaves its panels saying so. Needs the ``bench`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _bars(ax: Any, labels: list[str], values: list[float], fmt: str, colors: list[str]) -> None:
    bars = ax.bar(labels, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            fmt.format(value),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.tick_params(axis="x", labelsize=8)


def _missing(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _load(result: dict[str, Any]) -> str:
    load = result.get("load_average")
    return f"load {load[0]:.1f}" if load else "load not recorded"


def draw(out: Path) -> Path:
    """Draw the chart to ``out`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engine, api = _read("engine.json"), _read("api.json")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (throughput, ratios), (latency, http) = axes
    grey, blue = "#9e9e9e", "#1f77b4"
    if engine is None:
        for ax in (throughput, ratios, latency):
            _missing(ax, "bench/results/engine.json")
    else:
        when = f"{engine.get('measured_at', '?')}, {_load(engine)}"
        _bars(
            throughput,
            ["raw Celery", "Dramatiq 2x8", "engine\n(bulk)", "engine\n(1 msg/job)"],
            [
                engine["celery_tasks_per_s"],
                engine.get("dramatiq_jobs_per_s", 0.0),
                engine["engine_jobs_per_s"],
                engine["engine_jobs_per_s_one_message_per_job"],
            ],
            "{:,.0f}",
            [grey, grey, blue, blue],
        )
        throughput.set_ylabel("no-op jobs / s")
        throughput.set_title(f"Throughput, {engine['jobs']} jobs ({when})", fontsize=9)
        _bars(
            ratios,
            ["bulk ÷ Dramatiq", "bulk ÷ Celery", "1 msg/job ÷ Celery", "1 msg/job ÷ Dramatiq"],
            [
                engine.get("ratio_to_dramatiq", 0.0),
                engine["ratio"],
                engine["ratio_one_message_per_job"],
                engine.get("ratio_to_dramatiq_one_message_per_job", 0.0),
            ],
            "{:.2f}",
            [blue, grey, blue, grey],
        )
        ratios.axhline(1.0, color="red", linestyle="--", linewidth=1, label="target 1.0")
        ratios.legend(fontsize=8)
        ratios.set_title("Engine ÷ baseline in the same run (targets: blue bars)", fontsize=9)
        _bars(
            latency,
            ["start p50\n(ms)", "start p99\n(ms)", "rescue\n(s)"],
            [engine["start_latency_ms_p50"], engine["start_latency_ms_p99"], engine["rescue_s"]],
            "{:.1f}",
            [blue, grey, blue],
        )
        latency.axhline(10, color="red", linestyle="--", linewidth=1, label="target 10 ms / 10 s")
        latency.legend(fontsize=8)
        latency.set_title("Enqueue-to-start (idle) and rescue after SIGKILL", fontsize=9)
    if api is None:
        _missing(http, "bench/results/api.json")
    else:
        ep = api["endpoints"]
        names = [
            ("hello_get", "hello\nGET"),
            ("get_jobs", "GET\n/jobs"),
            ("hello_post", "hello\nPOST"),
            ("post_job", "POST\n/jobs"),
            ("post_job_floor", "its floor"),
            ("webhook", "webhook"),
        ]
        names = [(key, label) for key, label in names if key in ep]  # older runs: no floor
        _bars(
            http,
            [f"{label}\np99 {ep[key]['p99_ms']:.0f} ms" for key, label in names],
            [ep[key]["requests_per_s"] for key, _ in names],
            "{:,.0f}",
            [
                grey if key.startswith("hello") or key.endswith("floor") else blue
                for key, _ in names
            ],
        )
        half = ep["hello_post"]["requests_per_s"] / 2
        http.axhline(half, color="red", linestyle="--", linewidth=1, label="½ hello POST")
        http.legend(fontsize=8)
        http.set_ylabel("requests / s")
        paced = ep.get("post_job_paced")
        extra = f"; POST /jobs at {paced['offered_per_s']:,.0f}/s: p99 {paced['p99_ms']:.0f} ms"
        http.set_title(
            f"API, {api['clients']} clients ({_load(api)}{extra if paced else ''})", fontsize=9
        )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "chart.png")
    args = parser.parse_args()
    print(f"wrote {draw(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
