"""Spreadsheet imports of the catalog: a preview that names every bad row, then a confirm that
applies the good rows as a job with a result per row.

The upload is parsed as a stream (never held whole): good rows go to ``catalog_import_rows``
in batches, problems are counted and the first ``PROBLEMS_SHOWN`` kept with their line and
column. Nothing is applied until the import is confirmed, and a file with bad rows is applied
only when the person confirms its good rows alone. Applying sets each row's fields; a stock
figure that changes is an ``import`` movement of the stock ledger and fans out to the
channels like any other change.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from fusion.catalog.models import Product, ProductVariant
from fusion.errors import Conflict, NotFound, ValidationFailed
from fusion.inventory.ledger import move
from fusion.inventory.models import MovementKind
from fusion.inventory.service import fan_out_stock
from fusion.jobs import items
from fusion.jobs import service as jobs
from fusion.jobs.items import ItemResult
from fusion.jobs.models import ItemStatus, Job, JobItem
from fusion.onboarding.models import CatalogImport, ImportRow, ImportStatus
from fusion.onboarding.spreadsheet import Problem, check_row, header_problems

APPLY_IMPORT_JOB = "apply_import"
PROBLEMS_SHOWN = 1000
BATCH = 1000  # rows written, checked against the catalog, or applied at a time


def preview(
    session: Session,
    *,
    org_id: uuid.UUID,
    lines: Iterable[str],
    filename: str = "",
    created_by: uuid.UUID | None = None,
) -> CatalogImport:
    """Parse and check the CSV text ``lines`` (an iterator, read once) and keep its good rows.

    Raises ValidationFailed naming ``file`` when it has no header or the header is not the
    catalog's columns (nothing is kept then). Every other problem is a row's: counted, and
    the first PROBLEMS_SHOWN named by line and column with the reason."""
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed(fields={"file": ["the file is empty"]}) from None
    except csv.Error as exc:
        raise ValidationFailed(fields={"file": [f"not CSV: {exc}"]}) from None
    if problems := header_problems(header):
        raise ValidationFailed(fields={"file": problems})
    upload = CatalogImport(id=uuid.uuid4(), org_id=org_id, filename=filename[:255],
                           created_by=created_by)  # fmt: skip
    session.add(upload)
    session.flush()
    checker = _Checker(session, upload)
    batch: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line is no row
            upload.rows += 1
            if len(cells) != len(header):
                checker.bad(
                    [Problem(line, "*", f"{len(cells)} cells; the header has {len(header)}")]
                )
                continue
            row, found = check_row(line, dict(zip(header, cells, strict=True)))
            if found:
                checker.bad(found)
                continue
            batch.append((line, row))
            if len(batch) >= BATCH:
                checker.keep(batch)
                batch = []
    except csv.Error as exc:
        checker.bad([Problem(reader.line_num, "*", f"not CSV: {exc}")])
    checker.keep(batch)
    upload.problems = sorted(checker.shown, key=lambda p: (p["line"], str(p["column"])))
    session.flush()
    return upload


class _Checker:
    """Checks rows against the catalog and each other a batch at a time, and keeps the good."""

    def __init__(self, session: Session, upload: CatalogImport) -> None:
        self.session = session
        self.upload = upload
        self.shown: list[dict[str, Any]] = []
        self.seen: set[str] = set()  # SKUs of the file so far (a SKU twice is a problem)
        self.products: set[str] = set()  # product ids known to exist

    def bad(self, problems: Sequence[Problem]) -> None:
        self.upload.bad_rows += 1
        room = PROBLEMS_SHOWN - len(self.shown)
        self.shown += [p.as_dict() for p in problems[: max(0, room)]]

    def keep(self, batch: list[tuple[int, dict[str, str]]]) -> None:
        if not batch:
            return
        skus = [row["sku"] for _, row in batch]
        existing = set(
            self.session.scalars(select(ProductVariant.sku).where(ProductVariant.sku.in_(skus)))
        )
        wanted = {row["product_id"] for _, row in batch if "product_id" in row} - self.products
        if wanted:
            self.products |= {
                str(i)
                for i in self.session.scalars(
                    select(Product.id).where(Product.id.in_([uuid.UUID(w) for w in wanted]))
                )
            }
        good = []
        for line, row in batch:
            found = self._problems(line, row, row["sku"] in existing)
            if found:
                self.bad(found)
                continue
            self.seen.add(row["sku"])
            good.append({"id": uuid.uuid4(), "org_id": self.upload.org_id,
                         "import_id": self.upload.id, "line": line, "sku": row["sku"],
                         "data": row})  # fmt: skip
        if good:
            self.session.execute(insert(ImportRow), good)

    def _problems(self, line: int, row: dict[str, str], known: bool) -> list[Problem]:
        found = []
        if row["sku"] in self.seen:
            found.append(Problem(line, "sku", "the SKU is on an earlier line of the file"))
        if "product_id" in row and row["product_id"] not in self.products:
            found.append(Problem(line, "product_id", "no such product in the catalog"))
        if not known:
            if "price" not in row:
                found.append(Problem(line, "price", "required for a new SKU"))
            if "product_id" not in row and "product_title" not in row:
                found.append(
                    Problem(line, "product_title", "a new SKU needs its product's id or title")
                )
        return found


def get_import(session: Session, import_id: uuid.UUID) -> CatalogImport:
    """The import ``import_id`` of the session's org; raises NotFound otherwise."""
    upload = session.get(CatalogImport, import_id)
    if upload is None:
        raise NotFound(f"no import {import_id}")
    return upload


def confirm(
    session: Session,
    *,
    import_id: uuid.UUID,
    good_rows_only: bool = False,
    created_by: uuid.UUID | None = None,
) -> Job:
    """Apply the import's good rows as an ``apply_import`` job. Raises NotFound, Conflict
    when it was confirmed already, when it has bad rows and ``good_rows_only`` is not set
    (nothing is applied then), or when it has no good row."""
    upload = get_import(session, import_id)
    session.refresh(upload, with_for_update=True)
    if upload.status is not ImportStatus.PREVIEWED:
        raise Conflict(
            f"the import is {upload.status.value} already", details={"job_id": str(upload.job_id)}
        )
    if upload.bad_rows and not good_rows_only:
        raise Conflict(
            f"the file has {upload.bad_rows} bad rows: nothing is applied. Fix them and upload "
            "it again, or confirm with good_rows_only to apply the other rows alone",
            details={"bad_rows": upload.bad_rows},
        )
    if upload.rows == upload.bad_rows:
        raise Conflict("the file has no good row to apply")
    job = jobs.enqueue(
        session,
        org_id=upload.org_id,
        job_type=APPLY_IMPORT_JOB,
        payload={"import_id": str(upload.id)},
        created_by=created_by,
    )
    upload.status, upload.job_id = ImportStatus.CONFIRMED, job.id
    return job


def next_rows(
    session: Session, *, import_id: uuid.UUID, job_id: uuid.UUID, lines: Sequence[int] | None
) -> list[ImportRow]:
    """The next batch of rows to apply, in file order: those after the last one this job
    recorded (so a job resumed after a crash goes on where it was), only ``lines`` when given
    (a retry of failed rows). Empty when every row is done."""
    done = session.scalar(
        select(func.max(JobItem.data["line"].as_integer())).where(JobItem.job_id == job_id)
    )
    stmt = select(ImportRow).where(ImportRow.import_id == import_id, ImportRow.line > (done or 0))
    if lines is not None:
        stmt = stmt.where(ImportRow.line.in_(lines))
    return list(session.scalars(stmt.order_by(ImportRow.line).limit(BATCH)))


def actor_of_import(session: Session, import_id: uuid.UUID) -> str:
    """Who the ledger says changed the stock: the person who uploaded the file."""
    upload = get_import(session, import_id)
    return f"user:{upload.created_by}" if upload.created_by else "system"


def apply_rows(
    session: Session,
    *,
    org_id: uuid.UUID,
    job_id: uuid.UUID,
    rows: Sequence[ImportRow],
    actor: str,
) -> dict[str, int]:
    """Apply ``rows`` in the caller's transaction and record each row's result; stock
    changes go through the ledger (``import``) and fan out. Returns the batch's tally."""
    variants = {
        v.sku: v
        for v in session.scalars(
            select(ProductVariant)
            .where(ProductVariant.sku.in_([r.sku for r in rows]))
            .with_for_update()
        )
    }
    titles: dict[str, uuid.UUID] = {}
    results: list[ItemResult] = []
    moved: list[str] = []
    for row in rows:
        key, data = f"line {row.line}", {"line": row.line, "sku": row.sku}
        variant = variants.get(row.sku)
        if variant is not None and variant.deleting_at is not None:
            results.append(ItemResult(key, ItemStatus.FAILED, "the variant is being deleted", data))
            continue
        if variant is None:
            variant = _new_variant(session, org_id, row.data, titles)
            data["created"] = True
            changed = True
        else:
            changed = _set_fields(session, variant, row.data)
        quantity = row.data.get("available_quantity")
        if quantity is not None and int(quantity) != variant.available_quantity:
            before = variant.available_quantity
            reason = f"import: set to {quantity} (was {before})"
            move(session, variant=variant, kind=MovementKind.IMPORT, actor=actor, job_id=job_id,
                 reason=reason, set_to=int(quantity))  # fmt: skip
            moved.append(row.sku)
            changed = True
        status = ItemStatus.OK if changed or data.get("created") else ItemStatus.SKIPPED
        results.append(
            ItemResult(key, status, "" if status is ItemStatus.OK else "no change", data)
        )
    session.flush()
    if moved:
        fan_out_stock(session, org_id=org_id, skus=moved)
    return items.record(session, org_id=org_id, job_id=job_id, results=results)


def _new_variant(
    session: Session, org_id: uuid.UUID, data: dict[str, str], titles: dict[str, uuid.UUID]
) -> ProductVariant:
    """A variant for a new SKU, on the row's product, or on the product of the row's title
    (made by an earlier row, found in the catalog, or made now)."""
    product_id = uuid.UUID(data["product_id"]) if "product_id" in data else None
    if product_id is None:
        title = data["product_title"]
        product_id = titles.get(title) or session.scalar(
            select(Product.id).where(Product.title == title).order_by(Product.created_at).limit(1)
        )
        if product_id is None:
            product = Product(id=uuid.uuid4(), org_id=org_id, title=title,
                              description=data.get("product_description", ""))  # fmt: skip
            session.add(product)
            session.flush()
            product_id = product.id
        titles[title] = product_id
    # Every column the row can set is set here, so nothing is read back after the insert.
    variant = ProductVariant(id=uuid.uuid4(), org_id=org_id, product_id=product_id,
                             sku=data["sku"], price=Decimal(data["price"]),
                             title=data.get("variant_title", ""),
                             currency=data.get("currency", "USD"), available_quantity=0,
                             stock_version=0)  # fmt: skip
    session.add(variant)
    return variant


def _set_fields(session: Session, variant: ProductVariant, data: dict[str, str]) -> bool:
    changed = False
    for attribute, value in (
        ("title", data.get("variant_title")),
        ("price", Decimal(data["price"]) if "price" in data else None),
        ("currency", data.get("currency")),
    ):
        if value is not None and getattr(variant, attribute) != value:
            setattr(variant, attribute, value)
            changed = True
    product_fields = {
        "title": data.get("product_title"),
        "description": data.get("product_description"),
    }
    if any(v is not None for v in product_fields.values()):
        product = session.get(Product, variant.product_id)
        for attribute, value in product_fields.items():
            if product is not None and value is not None and getattr(product, attribute) != value:
                setattr(product, attribute, value)
                changed = True
    return changed


def finish(session: Session, *, import_id: uuid.UUID) -> None:
    """Mark the import applied."""
    upload = session.get(CatalogImport, import_id)
    if upload is not None:
        upload.status = ImportStatus.APPLIED


def retry_lines(payload: Any, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """An apply_import of the failed rows only (keys are ``line <n>``)."""
    lines = sorted(int(k.split()[1]) for k in keys)
    return APPLY_IMPORT_JOB, {"import_id": payload["import_id"], "lines": lines}


items.retries_with(APPLY_IMPORT_JOB, retry_lines)
