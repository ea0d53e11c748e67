"""Connecting stores and changing their credentials and settings.

Credentials arrive as plain strings once (when a store is connected or its credentials
change), are encrypted at once (``fusion.security.crypto``, bound to the org and store) and
are decrypted only by ``fusion.stores.client``, inside the plugin call. The caller owns the
transaction: nothing here commits.

A store's ``settings`` are what its plugin declares (``Plugin.settings``) and nothing else:
what the hub records about a store itself lives in ``Store.state``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from fusion import telemetry
from fusion.config import Settings
from fusion.errors import NotFound, ValidationFailed
from fusion.plugins.http import drop_session
from fusion.plugins.registry import get_plugin, plugin_slugs
from fusion.ratelimit.bucket import BucketConfig
from fusion.ratelimit.state import shown
from fusion.security.crypto import encrypt_credentials, encrypt_secret
from fusion.security.egress import EgressPolicy, EgressRefused, check_destination
from fusion.stores.catalog_rules import checked as catalog_rules_checked
from fusion.stores.models import REAUTHORISATION, Store, StoreStatus

log = logging.getLogger(__name__)


def _check_platform(platform: str) -> None:
    if platform not in plugin_slugs():
        raise ValidationFailed(
            f"unknown platform {platform!r}",
            fields={"platform": [f"must be one of {', '.join(plugin_slugs())}"]},
        )


def _check_credentials(credentials: Mapping[str, str]) -> None:
    if not credentials or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in credentials.items()
    ):
        raise ValidationFailed(
            "credentials must be a non-empty mapping of non-empty strings",
            fields={"credentials": ["must map names to non-empty strings"]},
        )


def _checked_settings(
    platform: str, values: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """``values`` without its unset (None) entries, if every name is a setting the platform's
    plugin declares, not a secret one, every URL the hub calls passes the egress rules and
    every required setting is there; else ValidationFailed naming each ``settings.<name>``."""
    plugin = get_plugin(platform)
    kept = {name: value for name, value in values.items() if value is not None}
    errors: dict[str, list[str]] = {}
    for name, value in kept.items():
        spec = plugin.setting(name)
        if spec is None:
            errors[f"settings.{name}"] = [f"{platform} has no setting {name!r}"]
        elif spec.secret:
            errors[f"settings.{name}"] = ["a secret: give it with the store's credentials"]
        elif spec.destination and value != "":
            try:
                check_destination(str(value), EgressPolicy.from_settings(settings))
            except EgressRefused as exc:
                errors[f"settings.{name}"] = [str(exc)]
    for spec in plugin.settings:
        if spec.required and not spec.secret and spec.value(kept) is None:
            errors[f"settings.{spec.name}"] = ["required"]
    if errors:
        raise ValidationFailed("invalid store settings", fields=errors)
    return kept


def settings_after(
    store: Store, changes: Mapping[str, Any], *, settings: Settings | None = None
) -> dict[str, Any]:
    """The store's settings with ``changes`` merged in: a name set to None is unset (the
    plugin's declared default applies again), the others are replaced. Does not change the
    store (the caller sets and audits the result). Raises ValidationFailed as
    ``connect_store`` does for its settings."""
    merged = {**(store.settings or {}), **changes}
    return _checked_settings(store.platform, merged, _settings(settings))


def _settings(settings: Settings | None) -> Settings:
    # The published signature of connect_store has no settings argument; callers that do not
    # pass them get the process's own (read from the environment once, at first use).
    if settings is not None:
        return settings
    global _env_settings
    if _env_settings is None:
        _env_settings = Settings.from_env()
    return _env_settings


_env_settings: Settings | None = None


def connect_store(
    session: Session,
    *,
    org_id: uuid.UUID,
    platform: str,
    name: str,
    external_id: str,
    base_url: str | None,
    credentials: Mapping[str, str],
    webhook_secret: str | None,
    rate_limit_config: Mapping[str, Any] | None = None,
    store_settings: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    stock_rules: Mapping[str, Any] | None = None,
    catalog_rules: Mapping[str, Any] | None = None,
) -> Store:
    """Add a store for ``org_id`` on ``platform`` with its credentials encrypted.

    Raises ValidationFailed (with field details) for an unknown platform, empty credentials,
    a base URL that is not http(s), an invalid ``rate_limit_config``, ``store_settings``
    that are not the plugin's (see :func:`settings_after`) or invalid ``catalog_rules``
    (``fusion.stores.catalog_rules``). Flushes so the id is known; the
    caller commits. The plaintext credentials are not kept anywhere."""
    settings = _settings(settings)
    _check_platform(platform)
    _check_credentials(credentials)
    if base_url is not None:
        try:
            check_destination(base_url, EgressPolicy.from_settings(settings))
        except EgressRefused as exc:
            raise ValidationFailed("invalid base_url", fields={"base_url": [str(exc)]}) from None
    BucketConfig.resolve(get_plugin(platform).rate_limit, rate_limit_config)
    store_settings = _checked_settings(platform, store_settings or {}, settings)
    store = Store(
        id=uuid.uuid4(),
        org_id=org_id,
        platform=platform,
        name=name,
        external_id=external_id,
        base_url=base_url,
        rate_limit_config=dict(rate_limit_config or {}),
        settings=store_settings,
        stock_rules=dict(stock_rules or {}),  # checked by fusion.inventory.channels
        catalog_rules=catalog_rules_checked(catalog_rules) if catalog_rules else {},
    )
    store.credentials_encrypted = encrypt_credentials(settings, org_id, store.id, credentials)
    if webhook_secret:
        store.webhook_secret_encrypted = encrypt_secret(settings, org_id, store.id, webhook_secret)
    session.add(store)
    session.flush()
    return store


def update_credentials(
    session: Session,
    *,
    store: Store,
    credentials: Mapping[str, str] | None = None,
    webhook_secret: str | None = None,
    settings: Settings | None = None,
) -> Store:
    """Replace the store's credentials and/or webhook secret (only those given), encrypted
    under the newest key; new credentials make a store that needed re-authorisation active
    again. Raises ValidationFailed for empty credentials."""
    settings = _settings(settings)
    if credentials is not None:
        _check_credentials(credentials)
        store.credentials_encrypted = encrypt_credentials(
            settings, store.org_id, store.id, credentials
        )
        if store.status == StoreStatus.NEEDS_REAUTH:  # the merchant gave a new grant
            store.status = StoreStatus.ACTIVE
            store.state = {k: v for k, v in (store.state or {}).items() if k != REAUTHORISATION}
    if webhook_secret is not None:
        store.webhook_secret_encrypted = encrypt_secret(
            settings, store.org_id, store.id, webhook_secret
        )
    session.flush()
    drop_session(str(store.id))  # pooled connections may carry the old auth
    return store


def get_store(session: Session, store_id: uuid.UUID) -> Store:
    """The store ``store_id`` of the session's org; raises NotFound otherwise."""
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    return store


def rate_limit(store: Store, redis_client: Any) -> dict[str, Any]:
    """The store's rate-limit state as people are shown it (``fusion.ratelimit.state.shown``):
    the bucket as the workers last wrote it and the calls throttled in the last 60 minutes
    (to the minute; None when Redis cannot be read)."""
    now = time.time()
    try:
        minutes = telemetry.throttle_minutes(
            redis_client, [store.id], since=(now - 3600) // 60 * 60, until=now + 60
        )
        throttled: int | None = sum(minutes[str(store.id)].values())
    except Exception:  # a view: Redis down must not fail the store's page
        log.warning("could not read the throttles of store %s", store.id)
        throttled = None
    return shown(store.rate_limit_state or {}, throttles_last_hour=throttled)
