"""The onboarding jobs: ``apply_import`` applies a confirmed spreadsheet, a batch of rows per
transaction, with a result per row."""

from __future__ import annotations

from typing import Any

from fusion.jobs import items
from fusion.jobs.context import JobContext
from fusion.jobs.registry import job_type
from fusion.onboarding import imports


@job_type(
    imports.APPLY_IMPORT_JOB,
    needs_store=False,
    internal="upload the file to POST /orgs/{org}/imports and confirm its preview",
)
def apply_import(ctx: JobContext) -> dict[str, Any]:
    """Apply the import's good rows (or the payload's ``lines`` of it), resuming after the
    last row recorded; each batch commits with its results, so a crash loses nothing."""
    import_id = ctx.payload_uuid("import_id")
    lines = ctx.payload.get("lines")
    with ctx.session() as session:
        actor = imports.actor_of_import(session, import_id)
    while True:
        with ctx.session() as session:
            rows = imports.next_rows(session, import_id=import_id, job_id=ctx.job_id, lines=lines)
            if not rows:
                imports.finish(session, import_id=import_id)
                tally = items.counts(session, ctx.job_id)
                break
            imports.apply_rows(
                session, org_id=ctx.org_id, job_id=ctx.job_id, rows=rows, actor=actor
            )
        ctx.log(f"applied lines up to {rows[-1].line}", "info", line=rows[-1].line)
        ctx.checkpoint()
    ctx.log(f"import applied: {tally}", "info", **tally)
    return tally
