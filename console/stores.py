"""Stores: the list, connecting one (owner), one store's page (capabilities, settings, webhook
address and subscription, rate-limit state, figures), editing its settings, testing its
connection, pausing and resuming it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.context import hub
from console import figures, validation
from console.charts import Series, bars
from console.scope import access, back, bp, page, tx
from fusion.actions import stores as actions
from fusion.auth.models import Role
from fusion.errors import JobError, ValidationFailed
from fusion.jobs.models import Job
from fusion.plugins.base import Capability, SettingSpec, SettingType
from fusion.plugins.registry import all_plugins, get_plugin
from fusion.stores import service as stores
from fusion.stores.client import check_connection
from fusion.stores.models import Store, StoreStatus
from fusion.webhooks import service as webhooks
from schemas.store_settings import parse_settings, shown_settings
from schemas.stores import StoreConnectSchema

SETTING = "settings."  # a setting's form field: settings.<name>, as the API's errors name it


@bp.get("/orgs/<uuid:org_id>/stores")
@page(Role.VIEWER)
def stores_page(org_id: uuid.UUID) -> str:
    found = list(tx().scalars(select(Store).order_by(Store.name)))
    return render_template(
        "console/stores.html", stores=found, plugins=all_plugins(), capabilities=list(Capability)
    )


def _json_field(name: str) -> Any:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationFailed(fields={name: ["Not valid JSON."]}) from None


@bp.post("/orgs/<uuid:org_id>/stores")
@page(Role.OWNER)
def connect_store(org_id: uuid.UUID) -> Response:
    raw: dict[str, Any] = {
        k: request.form[k] for k in ("platform", "name", "external_id") if k in request.form
    }
    for name in ("base_url", "webhook_secret"):
        if request.form.get(name, "").strip():
            raw[name] = request.form[name].strip()
    for name in ("credentials", "settings"):
        if (value := _json_field(name)) is not None:
            raw[name] = value
    body = validation.load(StoreConnectSchema(), raw)
    store = actions.connect(tx(), access(), settings=hub().settings, **body)
    flash(f"Connected {store.name}.", "ok")
    return back("console.store_page", org_id=org_id, store_id=store.id)


@bp.get("/orgs/<uuid:org_id>/stores/<uuid:store_id>")
@page(Role.VIEWER)
def store_page(org_id: uuid.UUID, store_id: uuid.UUID) -> str:
    return _store_page(stores.get_store(tx(), store_id))


def _store_page(
    store: Store, errors: dict[str, list[str]] | None = None, given: dict[str, str] | None = None
) -> str:
    """The store's page; after a refused settings form, with each field's reasons beside it
    and what was typed kept."""
    plugin = get_plugin(store.platform)
    done, failed = figures.finished_per_hour(tx(), store_id=store.id)
    public = hub().settings.public_url
    stored = store.settings or {}
    specs = [spec for spec in plugin.settings if not spec.secret]  # secrets go with credentials
    errors = errors or {}
    fields = {SETTING + spec.name for spec in specs}
    subscription = tx().scalar(
        select(Job)
        .where(Job.store_id == store.id, Job.job_type == webhooks.SUBSCRIBE_JOB)
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    return render_template(
        "console/store.html",
        store=store,
        rate_limit=stores.rate_limit(store, hub().redis),
        subscription=subscription,
        has_webhook_secret=store.webhook_secret_encrypted is not None,  # the value never
        capabilities=[(c.value, plugin.level(c).value) for c in Capability],
        figures=figures.per_store(tx()).get(store.id),
        settings=shown_settings(store.platform, stored),
        setting_fields=[
            (spec, _as_text(stored.get(spec.name)), _as_text(spec.default)) for spec in specs
        ],
        errors=errors,
        other_errors={k: v for k, v in errors.items() if k not in fields},  # e.g. unknown names
        given=given or {},
        webhook_url=f"{public.rstrip('/')}/webhooks/{store.platform}/{store.id}"
        if public
        else None,
        chart=bars(
            "This store's jobs finished per hour (24 h)",
            [Series("completed", done, "ok"), Series("failed", failed, "bad")],
        ),
    )


def _as_text(value: Any) -> str:
    """A setting's value as its form field shows it (JSON for what is not a string)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _typed(spec: SettingSpec | None, raw: str) -> Any:
    """A form field's text as the JSON value the API's settings schema checks: blank unsets
    the setting (its default applies); text that is not of the setting's type is passed on as
    it is, for the schema to refuse naming the field."""
    if not raw:
        return None
    if spec is None or spec.type in (SettingType.STRING, SettingType.URL):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value


@bp.post("/orgs/<uuid:org_id>/stores/<uuid:store_id>/settings")
@page(Role.OPERATOR)
def store_settings(org_id: uuid.UUID, store_id: uuid.UUID) -> Response | tuple[str, int]:
    """The settings form: every declared setting at once, merged as ``PATCH
    /orgs/{org}/stores/{id}`` with ``settings`` merges them (blank: back to the default), checked
    by the same schema and changed by the same service (operators; audited ``store.update``)."""
    store = stores.get_store(tx(), store_id)
    specs = {spec.name: spec for spec in get_plugin(store.platform).settings}
    given = {k: v.strip() for k, v in request.form.items() if k.startswith(SETTING)}
    raw = {k.removeprefix(SETTING): _typed(specs.get(k.removeprefix(SETTING)), v)
           for k, v in given.items()}  # fmt: skip
    try:
        changes = parse_settings(store.platform, raw)
        actions.update(tx(), access(), store_id, {"settings": changes}, settings=hub().settings)
    except ValidationFailed as exc:  # refused before anything was written
        if not exc.fields:
            raise
        return _store_page(store, exc.fields, given), 422
    flash(f"{store.name}: settings saved.", "ok")
    return back("console.store_page", org_id=org_id, store_id=store_id)


@bp.post("/orgs/<uuid:org_id>/stores/<uuid:store_id>/<any(pause, resume):action>")
@page(Role.OPERATOR)
def store_status(org_id: uuid.UUID, store_id: uuid.UUID, action: str) -> Response:
    store = stores.get_store(tx(), store_id)
    status = StoreStatus.PAUSED if action == "pause" else StoreStatus.ACTIVE
    if store.status is StoreStatus.DISCONNECTED:
        raise ValidationFailed(fields={"status": ["The store is disconnected."]})
    actions.update(tx(), access(), store_id, {"status": status}, settings=hub().settings)
    flash(f"{store.name}: {status.value}.", "ok")
    return back("console.store_page", org_id=org_id, store_id=store_id)


@bp.post("/orgs/<uuid:org_id>/stores/<uuid:store_id>/test-connection")
@page(Role.OPERATOR, transaction=False)
def test_connection(org_id: uuid.UUID, store_id: uuid.UUID) -> Response:
    # No transaction is held while the platform answers (as the API's test-connection).
    try:
        count = check_connection(hub().settings, hub().database, org_id=org_id, store_id=store_id)
        flash(f"Connected; the store holds {count} product(s).", "ok")
    except ValidationFailed as exc:
        flash(f"The store is incomplete: {', '.join(exc.fields)}.", "error")
    except JobError as exc:
        flash(f"The platform refused or did not answer ({type(exc).__name__}).", "error")
    return back("console.store_page", org_id=org_id, store_id=store_id)
