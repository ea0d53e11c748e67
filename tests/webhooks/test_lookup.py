"""A Printify ``order:*`` webhook names its order but carries no line items: the receiver
still acts on it, and ``process_webhook`` (the real engine, over Postgres) reads the order back
from the Printify sandbox before storing it once and taking its stock once."""

from __future__ import annotations

import uuid

import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.sandbox.printify import PrintifySandbox
from fusion.stores.service import connect_store
from tests.plugins.test_printify import (  # noqa: F401  (sandbox and receiver are fixtures)
    SECRET,
    Receiver,
    client_for,
    draft,
    make_shop,
    receiver,
    sandbox,
)


def _stock(admin_engine: Engine, sku: str) -> int:
    with admin_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT available_quantity FROM product_variants WHERE sku = :s"), {"s": sku}
            ).scalar_one()
        )


def test_a_printify_order_event_is_completed_from_the_api_then_ingested_once(
    sandbox: tuple[PrintifySandbox, str],  # noqa: F811
    receiver: Receiver,  # noqa: F811
    client: FlaskClient,
    database: Database,
    settings: Settings,
    admin_engine: Engine,
    job_engine: JobEngine,
    org_a: uuid.UUID,
) -> None:
    # Given a Printify shop selling TEE-0, connected to the hub, which holds 5 of it
    app, url = sandbox
    app.reset()
    shop = make_shop(url, webhook_url=receiver.url, webhook_secret=SECRET)
    client_for(shop).create_product(draft(None, 3))
    with database.org_session(org_a) as session:
        store = connect_store(
            session,
            org_id=org_a,
            platform="printify",
            name="Printify",
            external_id=shop.external_id,
            base_url=url,
            credentials={"token": str.__str__(shop.credentials["token"])},
            webhook_secret=SECRET,
            settings=settings,
        ).id
    with admin_engine.begin() as conn:
        product = uuid.uuid4()
        conn.execute(
            text("INSERT INTO products (id, org_id, title) VALUES (:p, :o, 'Tee')"),
            {"p": product, "o": org_a},
        )
        conn.execute(
            text(
                "INSERT INTO product_variants (id, org_id, product_id, sku, price, "
                "available_quantity) VALUES (:id, :o, :p, 'TEE-0', 20, 5)"
            ),
            {"id": uuid.uuid4(), "o": org_a, "p": product},
        )
    # When a buyer orders 2 and Printify sends its signed order:created (status only)
    receiver.wait_for(1)  # product:publish:started
    placed = requests.post(
        f"{url}/_sandbox/orders",
        json={"shop": int(shop.external_id), "lines": [{"sku": "TEE-0", "quantity": 2}]},
        timeout=10,
    ).json()
    receiver.wait_for(2)
    headers, body = receiver.requests[1]
    answer = client.post(f"/webhooks/printify/{store}", data=body, headers=headers)
    # Then the hub accepts it (it names an order) rather than ignoring it
    assert (answer.status_code, answer.json) == (200, {"status": "accepted"}), answer.data
    with admin_engine.connect() as conn:
        job_id = conn.execute(text("SELECT job_id FROM webhooks")).scalar_one()
    # and processing reads the order back, stores it with its lines and takes the stock
    assert job_engine.execute(uuid.UUID(str(job_id))) is Outcome.COMPLETED
    with admin_engine.connect() as conn:
        lines = conn.execute(
            text(
                "SELECT o.external_id, l.sku, l.quantity FROM orders o "
                "JOIN order_lines l ON l.order_id = o.id"
            )
        ).all()
        delivery = conn.execute(text("SELECT status, payload FROM webhooks")).one()
    assert [tuple(r) for r in lines] == [(placed["id"], "TEE-0", 2)]
    assert _stock(admin_engine, "TEE-0") == 3
    assert delivery.status == "processed"
    assert delivery.payload["resource"]["data"]["line_items"]  # the completed event is kept
    # And the same delivery again changes nothing
    again = client.post(f"/webhooks/printify/{store}", data=body, headers=headers)
    assert (again.status_code, again.json) == (200, {"status": "duplicate"})
    assert _stock(admin_engine, "TEE-0") == 3
