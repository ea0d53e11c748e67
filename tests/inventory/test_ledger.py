"""The stock ledger: every change is a movement made with the figure, in one transaction, so
under concurrent orders, cancellations and adjustments the two never disagree; and the
ledger itself cannot be rewritten."""

from __future__ import annotations

import random
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from fusion import telemetry
from fusion.auth.access import Access, ActorType, Principal
from fusion.auth.models import Role
from fusion.db.session import Database
from fusion.inventory import manual
from fusion.inventory.ledger import InsufficientStock
from fusion.orders.service import ingest_order
from fusion.plugins.base import OrderLine, RemoteOrder

INITIAL = 40
SKU = "LEDGER-1"


def _variant(admin_engine: Engine, org: uuid.UUID, quantity: int) -> uuid.UUID:
    variant_id, product_id = uuid.uuid4(), uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO products (id, org_id, title) VALUES (:p, :o, 'P')"),
            {"p": product_id, "o": org},
        )
        conn.execute(
            text(
                "INSERT INTO product_variants (id, org_id, product_id, sku, price, "
                "available_quantity) VALUES (:id, :o, :p, :s, 10, :q)"
            ),
            {"id": variant_id, "o": org, "p": product_id, "s": SKU, "q": quantity},
        )
    return variant_id


def _store(admin_engine: Engine, org: uuid.UUID) -> uuid.UUID:
    store_id = uuid.uuid4()
    with admin_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stores (id, org_id, platform, name, external_id) "
                "VALUES (:id, :o, 'shopify', 'S', :e)"
            ),
            {"id": store_id, "o": org, "e": f"shop-{store_id.hex[:8]}"},
        )
    return store_id


def _order(n: int, quantity: int, *, cancelled: bool = False) -> RemoteOrder:
    return RemoteOrder(
        external_id=f"o-{n}",
        lines=[OrderLine(sku=SKU, quantity=quantity, unit_price=Decimal("10"))],
        total=Decimal("10"),
        currency="USD",
        status="cancelled" if cancelled else "paid",
        cancelled=cancelled,
    )


def test_concurrent_orders_cancellations_and_adjustments_never_disagree_with_the_ledger(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given one SKU holding 40, and an operator
    variant_id = _variant(admin_engine, org_a, INITIAL)
    store_id = _store(admin_engine, org_a)
    operator = Access(Principal(ActorType.USER, uuid.uuid4()), org_a, Role.OPERATOR)
    rng = random.Random(9)
    work: list[tuple[str, int]] = [("order", n) for n in range(30)]
    work += [("adjust", rng.choice([-7, -3, 2, 5])) for _ in range(20)]
    work += [("cancel", n) for n in range(0, 30, 3)]  # may arrive before their order
    rng.shuffle(work)
    refused: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run(chunk: list[tuple[str, int]]) -> None:
        start.wait()
        for what, n in chunk:
            try:
                with database.org_session(org_a) as session:
                    if what == "adjust":
                        manual.adjust(session, operator, variant_id, delta=n, reason="count")
                    else:
                        ingest_order(
                            session,
                            org_id=org_a,
                            store_id=store_id,
                            order=_order(n, 1 + n % 3, cancelled=what == "cancel"),
                        )
            except InsufficientStock:
                refused.append(n)
            except BaseException as exc:
                errors.append(exc)

    # When eight threads work through orders, cancellations and adjustments at once
    threads = [threading.Thread(target=run, args=(work[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    # Then the figure is the initial one plus every movement, and the last movement's result
    with admin_engine.connect() as conn:
        available = conn.execute(
            text("SELECT available_quantity FROM product_variants WHERE id = :v"),
            {"v": variant_id},
        ).scalar_one()
        movements = conn.execute(
            text(
                "SELECT kind::text, delta, on_hand_after, order_id FROM stock_movements "
                "WHERE variant_id = :v ORDER BY created_at, id"
            ),
            {"v": variant_id},
        ).all()
        taken = conn.execute(
            text("SELECT coalesce(sum((stock_taken->>:s)::int), 0) FROM orders"), {"s": SKU}
        ).scalar_one()
        took = conn.execute(
            text("SELECT count(*) FROM orders WHERE stock_taken ? :s"), {"s": SKU}
        ).scalar_one()
        given_back = conn.execute(
            text(
                "SELECT coalesce(sum((stock_taken->>:s)::int), 0) FROM orders "
                "WHERE stock_restored_at IS NOT NULL"
            ),
            {"s": SKU},
        ).scalar_one()
    assert available == INITIAL + sum(m.delta for m in movements)
    assert available == movements[-1].on_hand_after
    # and each movement starts from where the one before it ended, never below zero
    on_hand = INITIAL
    for m in movements:
        on_hand += m.delta
        assert m.on_hand_after == on_hand >= 0
    # and the ledger shows exactly what orders took and cancellations gave back
    orders = [m for m in movements if m.kind == "order"]
    # (one for each order that took stock, even none; none for one first seen cancelled)
    assert len(orders) == took > 0
    assert -sum(m.delta for m in orders) == taken
    assert sum(m.delta for m in movements if m.kind == "cancellation") == given_back
    adjustments = [m for m in movements if m.kind == "manual_adjustment"]
    assert len(adjustments) + len(refused) == 20


def test_the_ledger_refuses_update_and_delete_but_keeps_a_deleted_variants_history(
    database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    # Given a variant with one movement
    variant_id = _variant(admin_engine, org_a, 5)
    operator = Access(Principal(ActorType.USER, uuid.uuid4()), org_a, Role.OPERATOR)
    with database.org_session(org_a) as session:
        manual.adjust(session, operator, variant_id, delta=2, reason="found")
    # When anyone, even the owner, updates or deletes it: refused
    for statement in ("UPDATE stock_movements SET delta = 99", "DELETE FROM stock_movements"):
        with pytest.raises(DBAPIError, match="append-only"):
            with admin_engine.begin() as conn:
                conn.execute(text(statement))
    # and the application role has no such privilege at all
    with pytest.raises(DBAPIError, match="permission denied"):
        with database.org_session(org_a) as session:
            session.execute(text("UPDATE stock_movements SET reason = 'x'"))
    # When the variant is deleted, its movements stay, with their SKU
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM product_variants WHERE id = :v"), {"v": variant_id})
        kept = conn.execute(text("SELECT variant_id, sku, delta FROM stock_movements")).all()
    assert [tuple(r) for r in kept] == [(None, SKU, 2)]


def test_a_sale_to_zero_is_counted_once_its_transaction_commits(
    database: Database, admin_engine: Engine, org_a: uuid.UUID, redis_client: Any
) -> None:
    _variant(admin_engine, org_a, 3)
    store = _store(admin_engine, org_a)
    previous = telemetry.installed()
    telemetry.install(redis_client)

    def counted() -> int:
        return int(redis_client.hget(telemetry.STOCK_HIT_ZERO.key, "[]") or 0)

    before = counted()
    try:
        # Given an order that takes the last 3, in a transaction that rolls back
        with pytest.raises(RuntimeError), database.org_session(org_a) as session:
            ingest_order(session, org_id=org_a, store_id=store, order=_order(1, 3))
            raise RuntimeError("rolled back")
        # Then nothing was counted
        assert counted() == before
        # When the same order commits
        with database.org_session(org_a) as session:
            ingest_order(session, org_id=org_a, store_id=store, order=_order(1, 3))
    finally:
        telemetry.install(previous)
    # Then the SKU hitting 0 is counted once
    assert counted() == before + 1
