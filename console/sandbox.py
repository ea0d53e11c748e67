"""Dev only (registered when ``FUSION_ENV`` is not production): a page that makes a shop on a
local Shopify sandbox and connects it, and places an order there, so the quickstart is a few
clicks. It talks to the sandbox over HTTP at the address `fusion up` prints (loopback only) and
imports nothing of ``fusion.sandbox``: its control API (``POST /_sandbox/shops``,
``/_sandbox/orders``) is the sandbox's documented surface."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.context import hub
from console import forms
from console.scope import access, back, bp, page, tx
from fusion.actions import stores as actions
from fusion.auth.models import Role
from fusion.errors import ValidationFailed
from fusion.stores import service as stores
from fusion.stores.models import Store

TIMEOUT_S = 5
WEBHOOK_SECRET_BYTES = 16


def _sandbox_url(name: str = "sandbox_url") -> str:
    """The sandbox's address from the form: http on a loopback host, nothing else."""
    return _loopback(forms.text(name, required=True).rstrip("/"), name)


def _loopback(url: str, name: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise ValidationFailed(fields={name: ["Must be http:// on a loopback address."]})
    return url


def _control(url: str, path: str, body: dict[str, Any]) -> None:
    try:
        answer = requests.post(f"{url}{path}", json=body, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise ValidationFailed(
            fields={"sandbox_url": [f"The sandbox did not answer ({type(exc).__name__})."]}
        ) from None
    if answer.status_code >= 400:
        raise ValidationFailed(fields={"sandbox_url": [f"The sandbox said {answer.status_code}."]})


@bp.get("/orgs/<uuid:org_id>/sandbox")
@page(Role.VIEWER)
def sandbox_page(org_id: uuid.UUID) -> str:
    shops = [
        s for s in tx().scalars(select(Store).where(Store.platform == "shopify")) if s.base_url
    ]
    return render_template("console/sandbox.html", shops=shops)


@bp.post("/orgs/<uuid:org_id>/sandbox/shops")
@page(Role.OWNER, transaction=False)
def sandbox_shop(org_id: uuid.UUID) -> Response:
    """Connect a store for a new sandbox shop, then make the shop (sending its orders to this
    hub's webhook address for the store); no transaction is open while the sandbox answers."""
    url = _sandbox_url()
    domain = f"demo-{uuid.uuid4().hex[:8]}.myshopify.com"
    token = "shpat_" + secrets.token_hex(16)
    webhook_secret = secrets.token_hex(WEBHOOK_SECRET_BYTES)
    body = {
        "platform": "shopify",
        "name": forms.text("name") or domain,
        "external_id": domain,
        "base_url": url,
        "credentials": {"access_token": token},
        "webhook_secret": webhook_secret,
    }
    with hub().database.org_session(org_id) as session:
        store_id = actions.connect(session, access(), settings=hub().settings, **body).id
    hook = f"{request.host_url.rstrip('/')}/webhooks/shopify/{store_id}"
    body = {"shop": domain, "token": token, "webhook_secret": webhook_secret, "webhook_url": hook}
    _control(url, "/_sandbox/shops", body)
    flash(f"Connected sandbox shop {domain}.", "ok")
    return back("console.store_page", org_id=org_id, store_id=store_id)


@bp.post("/orgs/<uuid:org_id>/sandbox/orders")
@page(Role.OPERATOR, transaction=False)
def sandbox_order(org_id: uuid.UUID) -> Response:
    store_id = forms.an_id("store_id", source="form", required=True)
    with hub().database.org_session(org_id) as session:
        store = stores.get_store(session, store_id)  # type: ignore[arg-type]
        shop, url = store.external_id, store.base_url
    if not url:
        raise ValidationFailed(fields={"store_id": ["The store has no sandbox address."]})
    _loopback(url.rstrip("/"), "store_id")
    line = {"sku": forms.text("sku", required=True), "quantity": forms.integer("quantity")}
    _control(url, "/_sandbox/orders", {"shop": shop, "lines": [line]})
    flash(f"Order placed on {shop}: {line['quantity']} x {line['sku']}.", "ok")
    return back("console.sandbox_page", org_id=org_id)
