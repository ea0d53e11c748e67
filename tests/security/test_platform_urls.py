"""URLs a platform hands back cannot point a worker at the hub's own network (issue 10.1).

Through the front door: a store is connected, a real job runs in the real engine, and the
store's "platform" (the sandbox behind a proxy that rewrites its answers) hands back an upload
target, a bulk result file or a feed document on a forbidden address. The hub is strict, as
in production, except for the one host:port of the proxy the store points at.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

import boot
from fusion.config import Settings
from fusion.db.session import Database
from fusion.jobs import service as jobs
from fusion.jobs.engine import Engine as JobEngine
from fusion.jobs.engine import Outcome
from fusion.plugins.amazon import AmazonPlugin
from fusion.plugins.base import ProductDraft, StoreConnection, VariantDraft
from fusion.plugins.http import StoreHttp
from fusion.plugins.registry import get_plugin
from fusion.plugins.shopify import ShopifyPlugin
from fusion.sandbox import SandboxServer
from fusion.security.crypto import Secret
from fusion.stores.service import connect_store
from tests.plugins.e2e import PROVISIONERS, ShopSpec, sandboxes
from tests.support.egress import LOOPBACK
from tests.support.remote import Internal, RewritingProxy

SKUS = ("EGRESS-RED", "EGRESS-BLUE")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SandboxServer]]:
    with sandboxes(["shopify", "amazon_sc"]) as started:
        yield started


@pytest.fixture
def internal() -> Iterator[Internal]:
    with Internal() as served:
        yield served


def _strict(settings: Settings, proxy: RewritingProxy, internal: Internal) -> Settings:
    # Production rules, the proxy's exact host:port exempt; the internal service's port is
    # one the hub may call, so only the address rules stand between it and the worker.
    return dataclasses.replace(
        settings,
        allow_private_egress=False,
        egress_allow=(f"localhost:{proxy.port}",),
        egress_ports=(internal.port,),
    )


def _store(
    settings: Settings,
    database: Database,
    org: uuid.UUID,
    platform: str,
    base_url: str,
    shop: ShopSpec,
) -> uuid.UUID:
    # Amazon's SQS settings name the sandbox's own port: left out, they are not what is tested.
    kept = {k: v for k, v in shop.settings.items() if not k.startswith("sqs_")}
    with database.org_session(org) as session:
        return connect_store(
            session,
            settings=settings,
            org_id=org,
            platform=platform,
            name=f"{platform} egress",
            external_id=shop.external_id,
            base_url=base_url,
            credentials=dict(shop.credentials),
            webhook_secret=None,
            store_settings={**kept, "bulk_poll_interval_s": 0.05}
            if platform == "shopify"
            else kept,
        ).id


def _run_bulk(
    settings: Settings, database: Database, org: uuid.UUID, store_id: uuid.UUID
) -> uuid.UUID:
    boot.load_jobs()
    payload = {"updates": [{"sku": sku, "quantity": 4} for sku in SKUS]}
    with database.org_session(org) as session:
        job_id = jobs.enqueue(
            session, org_id=org, job_type="bulk_operations", store_id=store_id, payload=payload
        ).id
    engine = JobEngine(settings, database, db_patience_s=5)
    engine.start()
    try:
        assert engine.execute(job_id) is Outcome.FAILED
    finally:
        engine.stop()
    return job_id


def _job(admin: Engine, job_id: uuid.UUID) -> tuple[str, str, str]:
    with admin.connect() as conn:
        status, error = conn.execute(
            text("SELECT status, last_error FROM jobs WHERE id = :id"), {"id": job_id}
        ).one()
        logs = conn.execute(
            text(
                "SELECT coalesce(string_agg(message || data::text, ' '), '') FROM job_logs "
                "WHERE job_id = :id"
            ),
            {"id": job_id},
        ).scalar_one()
    return str(status), str(error), str(logs)


def _shopify_product(sandbox: SandboxServer, shop: ShopSpec) -> None:
    """The SKUs exist on the shop (set up straight on the sandbox, not through the hub)."""
    conn = StoreConnection(
        store_id=f"setup-{uuid.uuid4()}",
        org_id="setup",
        platform="shopify",
        external_id=shop.external_id,
        base_url=sandbox.url,
        credentials={k: Secret(v) for k, v in shop.credentials.items()},
    )
    plugin = get_plugin("shopify")
    client = plugin.client(
        conn, StoreHttp(conn, spec=plugin.rate_limit, bucket=None, egress=LOOPBACK)
    )
    client.create_product(
        ProductDraft(
            title="Egress mug",
            description="",
            variants=[VariantDraft(sku=s, price=Decimal("9.00"), quantity=1) for s in SKUS],
            idempotency_key=uuid.uuid4().hex,
        )
    )


@pytest.mark.parametrize(
    ("answer", "forbidden", "listed", "reason"),
    [
        # the upload target, on a host neither the store's nor on the plugin's list
        (
            "stagedUploadsCreate",
            "http://169.254.169.254/latest/meta-data/iam/",
            None,
            "shopify POST /latest/meta-data/iam/ refused: the platform named a host the "
            "shopify plugin may not call",
        ),
        # the upload target, on the store's own host name, which resolves to loopback
        (
            "stagedUploadsCreate",
            "http://localhost:{internal}/upload",
            None,
            "shopify POST /upload refused: the host resolves to a loopback address",
        ),
        # the bulk result file, on a host the list names but an IPv4-mapped loopback address
        (
            "bulkOperation",
            "http://[::ffff:127.0.0.1]:{internal}/results.jsonl",
            "::ffff:127.0.0.1",
            "shopify GET /results.jsonl refused: the host resolves to an IPv4-mapped address",
        ),
        # the bulk result file, on a listed 6to4 address (which embeds 127.0.0.1)
        (
            "bulkOperation",
            "http://[2002:7f00:1::]:{internal}/results.jsonl",
            "2002:7f00:1::",
            "shopify GET /results.jsonl refused: the host resolves to a 6to4 address",
        ),
    ],
    ids=["upload-to-metadata", "upload-to-localhost", "results-ipv4-mapped", "results-6to4"],
)
def test_a_shopify_bulk_job_refuses_the_urls_its_platform_hands_back(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    servers: dict[str, SandboxServer],
    internal: Internal,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    forbidden: str,
    listed: str | None,
    reason: str,
) -> None:
    sandbox = servers["shopify"]
    with RewritingProxy(sandbox.url, host="localhost") as proxy:
        # Given a Shopify store behind a proxy at http://localhost:<port>, holding the SKUs
        shop = PROVISIONERS["shopify"](sandbox.url, "tok" + uuid.uuid4().hex)
        _shopify_product(sandbox, shop)
        strict = _strict(settings, proxy, internal)
        store_id = _store(strict, database, org_a, "shopify", proxy.origin, shop)
        # And the platform's answer to the bulk flow names a forbidden URL (what followed the
        # sandbox's own path goes into the fragment, which is never sent)
        target = {"stagedUploadsCreate": "/_staged_uploads", "bulkOperation": "/_bulk_results/"}
        url = forbidden.format(internal=internal.port)
        proxy.rules.append(("/graphql.json", proxy.origin + target[answer], url + "#"))
        if listed:
            monkeypatch.setattr(
                ShopifyPlugin, "egress_hosts", (*ShopifyPlugin.egress_hosts, listed)
            )
        # When the bulk inventory job runs
        job_id = _run_bulk(strict, database, org_a, store_id)
    # Then it failed for good, saying why, and the internal service was never reached
    status, error, logs = _job(admin_engine, job_id)
    assert (status, error) == ("failed", reason)
    assert internal.hits == []
    # And nothing the internal service holds is in the job's error or its logs
    assert Internal.SECRET not in error and Internal.SECRET not in logs


@pytest.mark.parametrize(
    ("forbidden", "listed", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            None,
            "amazon_sc GET /latest/meta-data/ refused: the platform named a host the amazon_sc "
            "plugin may not call",
        ),
        (
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "::ffff:169.254.169.254",
            "amazon_sc GET /latest/meta-data/ refused: the host resolves to an IPv4-mapped address",
        ),
    ],
    ids=["metadata-host", "listed-ipv4-mapped-metadata"],
)
def test_an_amazon_feed_job_refuses_a_report_document_on_a_forbidden_address(
    settings: Settings,
    database: Database,
    admin_engine: Engine,
    org_a: uuid.UUID,
    servers: dict[str, SandboxServer],
    internal: Internal,
    monkeypatch: pytest.MonkeyPatch,
    forbidden: str,
    listed: str | None,
    reason: str,
) -> None:
    sandbox = servers["amazon_sc"]
    with RewritingProxy(sandbox.url, host="localhost") as proxy:
        # Given an Amazon store behind the proxy, whose feed report document Amazon says is
        # at a forbidden address (the upload target stays the platform's own)
        shop = PROVISIONERS["amazon_sc"](sandbox.url, "tok" + uuid.uuid4().hex)
        strict = _strict(settings, proxy, internal)
        store_id = _store(strict, database, org_a, "amazon_sc", proxy.origin, shop)
        proxy.rules.append(
            ("/feeds/2021-06-30/documents/", proxy.origin + "/tortuga/", forbidden + "#")
        )
        if listed:
            monkeypatch.setattr(AmazonPlugin, "egress_hosts", (*AmazonPlugin.egress_hosts, listed))
        # When the bulk inventory job (a listings feed) runs
        job_id = _run_bulk(strict, database, org_a, store_id)
    # Then it failed for good at the report, saying why, and reached nothing internal
    status, error, logs = _job(admin_engine, job_id)
    assert (status, error) == ("failed", reason)
    assert internal.hits == []
    assert Internal.SECRET not in error and Internal.SECRET not in logs
