"""The catalog as a spreadsheet: its columns, a row's checks, and the CSV export.

One row per variant: ``product_id, product_title, product_description, sku, variant_title,
price, currency, available_quantity``. The export writes every column; an import needs the
``sku`` column and any of the others (a column left out, or a cell left empty, changes
nothing). Lines are counted as in the file, the header being line 1.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select

from fusion.catalog.models import Product, ProductVariant
from fusion.db.session import Database

COLUMNS = (
    "product_id",
    "product_title",
    "product_description",
    "sku",
    "variant_title",
    "price",
    "currency",
    "available_quantity",
)
MAX_QUANTITY = 10**9
MAX_PRICE = Decimal("9999999999.99")
EXPORT_CHUNK = 500  # rows per piece of the streamed export


@dataclass(frozen=True)
class Problem:
    """What is wrong with one cell (``column``) of one line; ``column`` is ``*`` for the row."""

    line: int
    column: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


def header_problems(header: Sequence[str]) -> list[str]:
    """Why a header is not this spreadsheet's (empty when it is)."""
    names = [h.strip() for h in header]
    problems = [
        f"unknown column {n!r} (columns: {', '.join(COLUMNS)})" for n in names if n not in COLUMNS
    ]
    if "sku" not in names:
        problems.append("the sku column is required")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    problems += [f"column {n!r} appears twice" for n in duplicated]
    return problems


def check_row(line: int, cells: Mapping[str, str]) -> tuple[dict[str, str], list[Problem]]:
    """The row's non-empty cells, trimmed, and the problems of each cell. Whether a new SKU
    has what a new variant needs is checked by the caller, who knows the catalog."""
    row = {k: v.strip() for k, v in cells.items() if v is not None and v.strip()}
    problems: list[Problem] = []

    def bad(column: str, reason: str) -> None:
        problems.append(Problem(line, column, reason))

    sku = row.get("sku", "")
    if not sku:
        bad("sku", "required")
    elif len(sku) > 120:
        bad("sku", "longer than 120 characters")
    if "product_id" in row:
        try:
            row["product_id"] = str(uuid.UUID(row["product_id"]))
        except ValueError:
            bad("product_id", "not a product id (a UUID)")
    for column, limit in (("product_title", 500), ("variant_title", 500)):
        if len(row.get(column, "")) > limit:
            bad(column, f"longer than {limit} characters")
    if "price" in row:
        try:
            price = Decimal(row["price"])
        except InvalidOperation:
            bad("price", "not a number")
        else:
            if not price.is_finite() or price <= 0 or price > MAX_PRICE:
                bad("price", f"must be above 0 and at most {MAX_PRICE}")
            elif price.as_tuple().exponent < -2:  # type: ignore[operator]
                bad("price", "more than 2 decimal places")
    if "currency" in row and not (len(row["currency"]) == 3 and row["currency"].isalpha()):
        bad("currency", "not a 3-letter currency code")
    if "currency" in row:
        row["currency"] = row["currency"].upper()
    if "available_quantity" in row:
        text = row["available_quantity"]
        if not text.isdigit():
            bad("available_quantity", "not a whole number of 0 or more")
        elif int(text) > MAX_QUANTITY:
            bad("available_quantity", f"more than {MAX_QUANTITY}")
    return row, problems


def export_lines(database: Database, org_id: uuid.UUID) -> Iterator[str]:
    """The org's catalog as CSV text, in pieces, read with a server-side cursor so that any
    size streams in bounded memory. Variants being deleted are left out."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    stmt = (
        select(
            Product.id,
            Product.title,
            Product.description,
            ProductVariant.sku,
            ProductVariant.title,
            # A variant without a price of its own sells at its product's base price.
            func.coalesce(ProductVariant.price, Product.base_price, 0),
            ProductVariant.currency,
            ProductVariant.available_quantity,
        )
        .join(ProductVariant, ProductVariant.product_id == Product.id)
        .where(ProductVariant.deleting_at.is_(None))
        .order_by(Product.created_at, Product.id, ProductVariant.sku)
        .execution_options(yield_per=EXPORT_CHUNK)
    )
    with database.org_session(org_id) as session:
        for n, row in enumerate(session.execute(stmt), 1):
            writer.writerow([row[0], row[1], row[2], row[3], row[4], f"{row[5]:.2f}", *row[6:]])
            if n % EXPORT_CHUNK == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()
