"""The onboarding jobs: ``apply_import`` applies a confirmed spreadsheet, a batch of rows per
transaction, with a result per row; ``read_store_listings`` reads what a store already sells
for an adoption's preview, a page per transaction, and ``apply_adoption`` applies it, a
batch of listings per transaction, with a result per listing."""

from __future__ import annotations

from typing import Any

from fusion.jobs import items
from fusion.jobs.context import JobContext
from fusion.jobs.registry import job_type
from fusion.onboarding import adoption, imports
from fusion.plugins.base import Capability
from fusion.stores.client import store_client


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


@job_type(
    adoption.READ_LISTINGS_JOB,
    internal="start an adoption instead: POST /orgs/{org}/stores/{id}/adoptions",
)
def read_store_listings(ctx: JobContext) -> dict[str, Any]:
    """Read the store's listings page by page from where the adoption's reading stands, each
    page kept with the next cursor in one transaction; then match them all to the catalog.
    A call short of rate-limit tokens reschedules the job (no attempt spent), which goes on
    from the page it had reached."""
    adoption_id = ctx.payload_uuid("adoption_id")
    with store_client(ctx, Capability.LIST_PRODUCTS, max_inline_wait_s=0) as bound:
        while True:
            with ctx.session() as session:
                cursor, done = adoption.reading_from(session, adoption_id)
            if done:
                break
            page = bound.client.list_products_page(cursor)
            with ctx.session() as session:
                held = adoption.keep_page(session, adoption_id=adoption_id, page=page)
            ctx.log(f"read {len(page.products)} listings ({held} in all)", "info", held=held)
            ctx.checkpoint()
    with ctx.session() as session:
        plan = adoption.make_plan(session, adoption_id=adoption_id)
    ctx.log(f"adoption planned: {plan}", "info", **plan)
    return plan


@job_type(
    adoption.APPLY_ADOPTION_JOB,
    internal="confirm the adoption's preview: POST /orgs/{org}/stores/{id}/adoptions/{id}/confirm",
)
def apply_adoption(ctx: JobContext) -> dict[str, Any]:
    """Adopt the previewed listings (or the payload's ``external_ids`` of them), resuming
    after the last one recorded; each batch commits with its results."""
    adoption_id = ctx.payload_uuid("adoption_id")
    create = bool(ctx.payload.get("create_unmatched"))
    external_ids = ctx.payload.get("external_ids")
    with ctx.session() as session:
        actor = adoption.actor_of(session, adoption_id)
    while True:
        with ctx.session() as session:
            rows = adoption.next_listings(
                session, adoption_id=adoption_id, job_id=ctx.job_id, external_ids=external_ids
            )
            if not rows:
                adoption.finish(session, adoption_id=adoption_id)
                tally = items.counts(session, ctx.job_id)
                break
            adoption.apply_listings(session, adoption_id=adoption_id, job_id=ctx.job_id,
                                    rows=rows, create_unmatched=create, actor=actor)  # fmt: skip
        ctx.log(f"adopted listings up to {rows[-1].position}", "info", position=rows[-1].position)
        ctx.checkpoint()
    ctx.log(f"adoption applied: {tally}", "info", **tally)
    return tally
