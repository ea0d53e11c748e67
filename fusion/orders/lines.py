"""An order's lines, and the check that a request names some of them in quantities still
open (shipping and returning both ask it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from fusion.errors import ValidationFailed
from fusion.orders.models import OrderLine


class LineAsk(Protocol):
    @property
    def line_id(self) -> uuid.UUID: ...

    @property
    def quantity(self) -> int: ...


def order_lines(session: Session, order_id: uuid.UUID) -> dict[uuid.UUID, OrderLine]:
    """The order's lines by id."""
    return {
        line.id: line
        for line in session.scalars(select(OrderLine).where(OrderLine.order_id == order_id))
    }


def check_lines(
    asks: Sequence[LineAsk],
    own: Mapping[uuid.UUID, OrderLine],
    done: Mapping[uuid.UUID, int],
    *,
    too_many: Callable[[OrderLine, int, int], str],
    unusable: Callable[[OrderLine], str | None] = lambda _line: None,
) -> None:
    """Raise ValidationFailed naming ``lines.<n>.line_id`` for a line not in ``own``, named
    twice, or ``unusable``, and ``lines.<n>.quantity`` for more than the line's quantity less
    ``done`` of it (``too_many(line, left, asked)`` says why)."""
    problems: dict[str, list[str]] = {}
    seen: set[uuid.UUID] = set()
    for n, asked in enumerate(asks):
        line = own.get(asked.line_id)
        why = None if line is None or asked.line_id in seen else unusable(line)
        if line is None:
            problems[f"lines.{n}.line_id"] = [f"{asked.line_id} is not a line of this order."]
        elif asked.line_id in seen:
            problems[f"lines.{n}.line_id"] = [f"{asked.line_id} is named twice."]
        elif why is not None:
            problems[f"lines.{n}.line_id"] = [why]
        else:
            left = line.quantity - done.get(line.id, 0)
            if asked.quantity > left:
                problems[f"lines.{n}.quantity"] = [too_many(line, left, asked.quantity)]
        seen.add(asked.line_id)
    if problems:
        raise ValidationFailed(fields=problems)
