"""Spreadsheets of the catalog: the streamed CSV export, and imports (preview, confirm)."""

from __future__ import annotations

import codecs
import uuid
from collections.abc import Iterator
from typing import IO, Any

from flask import Response, request, stream_with_context
from flask_smorest import Blueprint

from api.context import hub
from api.preflight import streamed_upload
from api.security import access, org_scope, tx
from fusion.audit.service import record
from fusion.auth.models import Role
from fusion.errors import ValidationFailed
from fusion.jobs.models import Job
from fusion.onboarding import imports
from fusion.onboarding.models import CatalogImport
from fusion.onboarding.spreadsheet import export_lines
from schemas.imports import ImportConfirmSchema, ImportSchema
from schemas.job_views import JobSchema

blp = Blueprint("imports", __name__, url_prefix="/orgs", description="Spreadsheets.")


@blp.get("/<uuid:org_id>/exports/catalog.csv")
@blp.response(200, content_type="text/csv")
@org_scope(Role.VIEWER, transaction=False)
def export_catalog(org_id: uuid.UUID) -> Response:
    """Every product and variant with its price and stock, one row per variant, streamed."""
    lines = export_lines(hub().database, org_id)
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="catalog.csv"'},
    )


@blp.post("/<uuid:org_id>/imports")
@blp.response(201, ImportSchema)
@org_scope(Role.OPERATOR)
@streamed_upload
def upload(org_id: uuid.UUID) -> CatalogImport:
    """Upload a CSV (``multipart/form-data`` with a ``file`` part, or a ``text/csv`` body) of
    the export's columns: a preview naming each bad row by line and column with the reason.
    Nothing is applied until it is confirmed. 422 naming ``file`` for a header that is not
    the catalog's."""
    stream, filename = _upload()
    return imports.preview(
        tx(), org_id=org_id, lines=stream, filename=filename, created_by=access().user_id
    )


@blp.get("/<uuid:org_id>/imports/<uuid:import_id>")
@blp.response(200, ImportSchema)
@org_scope(Role.VIEWER)
def get_import(org_id: uuid.UUID, import_id: uuid.UUID) -> CatalogImport:
    """One import's preview and status."""
    return imports.get_import(tx(), import_id)


@blp.post("/<uuid:org_id>/imports/<uuid:import_id>/confirm")
@blp.arguments(ImportConfirmSchema)
@blp.response(202, JobSchema)
@org_scope(Role.OPERATOR)
def confirm(body: dict[str, Any], org_id: uuid.UUID, import_id: uuid.UUID) -> Job:
    """Apply the import's good rows as a job with a result per row (``GET
    /orgs/{org}/jobs/{id}/items``). 409, applying nothing, when the file has bad rows and
    ``good_rows_only`` is not true, or when it was confirmed already."""
    job = imports.confirm(tx(), import_id=import_id, created_by=access().user_id, **body)
    record(tx(), org_id=org_id, actor=access().principal, action="import.confirm",
           resource_type="catalog_import", resource_id=import_id,
           after={"job_id": job.id, **body})  # fmt: skip
    return job


def _upload() -> tuple[Iterator[str], str]:
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise ValidationFailed(fields={"file": ["a multipart upload needs a file part"]})
        return _text(part.stream), part.filename or ""
    if request.mimetype in ("text/csv", "text/plain"):
        return _text(request.stream), ""
    raise ValidationFailed(fields={"file": ["send multipart/form-data or a text/csv body"]})


def _text(raw: IO[bytes]) -> Iterator[str]:
    """The upload's lines as text (UTF-8, a byte-order mark dropped), read as they come."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending = ""
    try:
        while chunk := raw.read(64 * 1024):
            pending += decoder.decode(chunk)
            *whole, pending = pending.split("\n")
            for line in whole:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ValidationFailed(fields={"file": ["the file is not UTF-8 text"]}) from None
    if pending:
        yield pending
