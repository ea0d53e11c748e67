"""Spreadsheet imports: rows per second and memory, at 10,000 and 100,000 rows.

For each size: a fresh org, a CSV of that many rows (one new SKU per row, 10 variants per
product, a price and a stock figure each) streamed into ``fusion.onboarding.imports.preview``
from a file on disk (as the API streams an upload), then confirmed and its ``apply_import``
job run by the real job engine in this process. Measured per phase:

- rows_per_s: rows / elapsed seconds
- peak_python_mib: the peak of Python's own allocations during the phase (tracemalloc),
  which stays flat as the file grows when the parse streams and applying goes in batches

The 10,000-row run is the baseline of the same run: ``ratios`` gives the 100,000-row run's
rows per second and peak memory over it (throughput near 1 and memory near 1 mean linear
time and bounded memory).

Starts its own scratch database (FUSION_BENCH_DATABASE_URL, else the machine's 127.0.0.1:5432
or an embedded Postgres) and writes ``bench/results/imports.json``.
Run: ``.venv/bin/python bench/imports.py [rows ...]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

import boot  # noqa: E402
from fusion.config import Settings  # noqa: E402
from fusion.db import migrate  # noqa: E402
from fusion.db.session import Database, make_engine  # noqa: E402
from fusion.jobs.engine import Engine, Outcome  # noqa: E402
from fusion.onboarding import imports  # noqa: E402
from fusion.onboarding.spreadsheet import COLUMNS  # noqa: E402
from tests.support.servers import ScratchDatabase, admin_postgres_url  # noqa: E402

SIZES = (10_000, 100_000)
PER_PRODUCT = 10


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write(",".join(COLUMNS) + "\n")
        for n in range(rows):
            product = n // PER_PRODUCT
            out.write(f",Product {product},Made in a batch,SKU-{n:07d},Size {n % PER_PRODUCT},"
                      f"{10 + n % 90}.50,USD,{n % 40}\n")  # fmt: skip


def _measured(run: Any) -> tuple[Any, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    value = run()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, elapsed, peak / 2**20


def _one(settings: Settings, db: Database, admin: Any, rows: int, home: Path) -> dict[str, Any]:
    org = uuid.uuid4()
    with admin.begin() as conn:
        conn.execute(
            text("INSERT INTO orgs (id, name, slug) VALUES (:id, 'bench', :slug)"),
            {"id": org, "slug": f"bench-{org.hex[:8]}"},
        )
    path = home / f"catalog-{rows}.csv"
    _write_csv(path, rows)

    def parse() -> uuid.UUID:
        with db.org_session(org) as session, path.open() as lines:
            return imports.preview(session, org_id=org, lines=lines, filename=path.name).id

    import_id, parse_s, parse_peak = _measured(parse)
    with db.org_session(org) as session:
        job_id = imports.confirm(session, import_id=import_id).id
    engine = Engine(settings, db, db_patience_s=30)
    engine.start()
    try:
        outcome, apply_s, apply_peak = _measured(lambda: engine.execute(job_id))
    finally:
        engine.stop()
    assert outcome is Outcome.COMPLETED, outcome
    return {
        "rows": rows,
        "preview": {"rows_per_s": round(rows / parse_s), "elapsed_s": round(parse_s, 2),
                    "peak_python_mib": round(parse_peak, 1)},
        "apply": {"rows_per_s": round(rows / apply_s), "elapsed_s": round(apply_s, 2),
                  "peak_python_mib": round(apply_peak, 1)},
    }  # fmt: skip


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or list(SIZES)
    database = ScratchDatabase(os.environ.get("FUSION_BENCH_DATABASE_URL") or admin_postgres_url())
    database.create()
    home = Path(tempfile.mkdtemp(prefix="fusion-bench-"))
    env = {"FUSION_ENV": "test", "FUSION_HOME": str(home), "FUSION_DATABASE_URL": database.url,
           "FUSION_LOG_LEVEL": "WARNING"}  # fmt: skip
    try:
        settings = Settings.from_env(env)
        migrate.upgrade(settings)
        assert settings.app_database_url and settings.database_url
        boot.load_jobs()
        db = Database(settings.app_database_url)
        admin = make_engine(settings.database_url)
        runs = [_one(settings, db, admin, rows, home) for rows in sizes]
        db.dispose()
        admin.dispose()
    finally:
        database.drop()
    result: dict[str, Any] = {"runs": runs}
    if len(runs) > 1:
        base, big = runs[0], runs[-1]
        result["ratios"] = {
            phase: {
                "rows_per_s": round(big[phase]["rows_per_s"] / base[phase]["rows_per_s"], 2),
                "peak_python_mib": round(
                    big[phase]["peak_python_mib"] / max(base[phase]["peak_python_mib"], 0.1), 2
                ),
            }
            for phase in ("preview", "apply")
        }
    out = ROOT / "bench" / "results" / "imports.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
