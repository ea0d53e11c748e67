"""The one bridge from a store row to a platform client.

Credentials are decrypted here and nowhere else (:func:`store_connection`), inside the
plugin call only. :func:`store_client` reads the store, decrypts its credentials (never into
the payload or a log), binds the pooled HTTP helper to the store's shared token bucket and
hands the plugin's client to the handler, with the store's memo of platform ids
(:mod:`fusion.stores.memo`). Everything the client says through ``log`` (a
workaround, what it did instead) lands in the job's log.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import (
    ConfigError,
    NotFound,
    PermanentError,
    ReauthorisationNeeded,
    UnsupportedCapability,
    ValidationFailed,
)
from fusion.plugins.base import (
    Capability,
    CredentialExchange,
    CredentialRenewer,
    PlatformClient,
    Plugin,
    StoreConnection,
)
from fusion.plugins.http import Deadline, StoreHttp, new_session
from fusion.plugins.models import ContractLevel
from fusion.plugins.registry import get_plugin
from fusion.ratelimit.bucket import BucketConfig, TokenBucket
from fusion.ratelimit.state import persist_state
from fusion.security.crypto import (
    Secret,
    decrypt_credentials,
    decrypt_secret,
    encrypt_credentials,
)
from fusion.security.egress import EgressPolicy, check_destination
from fusion.stores.memo import RedisMemo
from fusion.stores.models import REAUTHORISATION, Store, StoreStatus

if TYPE_CHECKING:
    from fusion.jobs.context import JobContext

_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()


def redis_for(ctx: JobContext) -> redis.Redis:
    if isinstance(ctx.redis, redis.Redis):
        return ctx.redis
    url = ctx.settings.redis_url
    if not url:
        raise ConfigError("FUSION_REDIS_URL: not set (rate limits need Redis)")
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            _redis_clients[url] = client
        return client


@dataclass(frozen=True)
class StoreInfo:
    """What a handler may know about its store outside the client (no credentials)."""

    id: uuid.UUID
    org_id: uuid.UUID
    platform: str
    external_id: str


@dataclass
class Bound:
    plugin: Plugin
    client: PlatformClient
    http: StoreHttp
    store: StoreInfo

    def level(self, capability: Capability) -> ContractLevel:
        return self.plugin.level(capability)


def require(ctx: JobContext, plugin: Plugin, capability: Capability) -> ContractLevel:
    """The plugin's level for ``capability``; raises UnsupportedCapability (permanent: the
    job fails at once, never retried) when unsupported, and logs a workaround."""
    level = plugin.level(capability)
    if level == ContractLevel.UNSUPPORTED:
        raise UnsupportedCapability(plugin.slug, capability.value)
    if level == ContractLevel.WORKAROUND:
        ctx.log(
            f"{plugin.slug} has no native {capability.value}; using the plugin's workaround",
            "info",
            workaround=capability.value,
        )
    return level


@contextmanager
def store_client(
    ctx: JobContext,
    capability: Capability | None = None,
    *,
    store_id: uuid.UUID | None = None,
    max_inline_wait_s: float | None = None,
) -> Iterator[Bound]:
    """The store's plugin client for this job (or for ``store_id`` of the job's org, for a
    job that names no store), credentials decrypted for its duration only.
    ``max_inline_wait_s=0``: no call waits inline for rate-limit tokens; a short bucket or a
    429 raises RateLimited at once, so the job is rescheduled for when the tokens are due
    (attempt not counted) and its worker slot serves other jobs meanwhile.

    Raises PermanentError when the job has no store (or it is gone), UnsupportedCapability when the
    plugin cannot do ``capability``, CredentialsUnreadable when the credentials do not
    decrypt; the HTTP helper's errors propagate from the client's calls."""
    store_id = store_id or ctx.store_id
    if store_id is None:
        raise PermanentError("this job names no store")
    with ctx.session() as session:
        store = session.get(Store, store_id)
        if store is None:
            raise PermanentError(f"store {store_id} no longer exists")
        plugin = get_plugin(store.platform)
        if capability is not None:
            require(ctx, plugin, capability)
        config = BucketConfig.resolve(plugin.rate_limit, store.rate_limit_config)
        memo = RedisMemo(
            redis_for(ctx), store_id=str(store.id), address=f"{store.base_url} {store.external_id}"
        )
        conn = replace(store_connection(ctx.settings, store, database=ctx.database), memo=memo)
        info = StoreInfo(store.id, store.org_id, store.platform, store.external_id)

    def on_state(state: dict[str, Any]) -> None:
        persist_state(ctx.database, info.org_id, info.id, state)

    def client_log(message: str) -> None:
        ctx.log(message, "info", platform=info.platform)

    bucket = TokenBucket(redis_for(ctx), str(info.id), config)
    http = StoreHttp(
        conn,
        spec=plugin.rate_limit,
        bucket=bucket,
        on_state=on_state,
        egress=EgressPolicy.from_settings(ctx.settings),
        hosts=egress_hosts(plugin, conn),
        max_inline_wait_s=max_inline_wait_s,
    )
    client = plugin.client(conn, http, client_log)
    yield Bound(plugin=plugin, client=client, http=http, store=info)


def store_connection(
    settings: Settings, store: Store, *, database: Database | None = None
) -> StoreConnection:
    """The store as a plugin client sees it, credentials decrypted (as ``Secret`` values);
    with ``database``, the client may renew them (:func:`renewer`).

    Call it inside the plugin call only and let the result go out of scope with it. Raises
    CredentialsUnreadable (a PermanentError) when the credentials cannot be decrypted or
    belong to another store, ValidationFailed when the store has no base URL or credentials,
    EgressRefused (a PermanentError) when the base URL, or a URL setting the hub calls, leads
    somewhere the hub may not call."""
    if not store.base_url:
        raise ValidationFailed("the store has no base_url", fields={"base_url": ["required"]})
    if store.credentials_encrypted is None:
        raise ValidationFailed("the store has no credentials", fields={"credentials": ["none"]})
    # Checked again at connect time (a name may resolve elsewhere than when it was saved),
    # and the HTTP helper checks every request once more, pinning the address it vetted.
    policy = EgressPolicy.from_settings(settings)
    check_destination(store.base_url, policy)
    values = dict(store.settings or {})
    for spec in get_plugin(store.platform).settings:
        if spec.destination and spec.value(values):
            check_destination(str(spec.value(values)), policy)
    credentials = decrypt_credentials(settings, store.org_id, store.id, store.credentials_encrypted)
    return StoreConnection(
        store_id=str(store.id),
        org_id=str(store.org_id),
        platform=store.platform,
        external_id=store.external_id,
        base_url=store.base_url,
        credentials=credentials,
        settings=values,
        renew=renewer(settings, database, store.org_id, store.id) if database else None,
    )


def renewer(
    settings: Settings, database: Database, org_id: uuid.UUID, store_id: uuid.UUID
) -> CredentialRenewer:
    """The store's :class:`CredentialRenewer`: the store row is locked (``SELECT ... FOR
    UPDATE``) while the exchange runs, so concurrent workers renew once and the others read
    the renewed credentials. What the exchange returns is kept encrypted; a
    ReauthorisationNeeded marks the store ``needs_reauth`` with the reason in its state."""

    def renew(exchange: CredentialExchange) -> Mapping[str, Secret]:
        refused: ReauthorisationNeeded | None = None
        with database.org_session(org_id) as session:
            store = session.get(Store, store_id, with_for_update=True)
            if store is None or store.credentials_encrypted is None:
                raise PermanentError(f"store {store_id} no longer has credentials")
            current = decrypt_credentials(settings, org_id, store_id, store.credentials_encrypted)
            try:
                renewed = exchange(current)
            except ReauthorisationNeeded as exc:
                refused, renewed = exc, None
                store.status = StoreStatus.NEEDS_REAUTH
                store.state = {
                    **(store.state or {}),
                    REAUTHORISATION: {"reason": str(exc), "at": datetime.now(UTC).isoformat()},
                }
            if renewed is not None:
                store.credentials_encrypted = encrypt_credentials(
                    settings, org_id, store_id, renewed
                )
        if refused is not None:
            raise refused  # after the commit: the store stays marked
        if renewed is None:
            return current
        return {k: Secret(v) for k, v in renewed.items()}

    return renew


def webhook_secret(settings: Settings, store: Store) -> str | None:
    """The store's decrypted webhook signing secret, or None when it has none."""
    if store.webhook_secret_encrypted is None:
        return None
    return decrypt_secret(settings, store.org_id, store.id, store.webhook_secret_encrypted)


def egress_hosts(plugin: Plugin, conn: StoreConnection) -> tuple[str, ...]:
    """The hosts besides the base URL's that ``conn``'s requests may name: the plugin's list
    and the hosts of the URL settings the store gave (``lwa_url``; each passed the egress
    rules when saved)."""
    hosts = list(plugin.egress_hosts)
    for spec in plugin.settings:
        value = spec.value(conn.settings) if spec.destination else None
        host = urlsplit(str(value)).hostname if value else None
        if host:
            hosts.append(host)
    return tuple(hosts)


def check_connection(
    settings: Settings, database: Database, *, org_id: uuid.UUID, store_id: uuid.UUID
) -> int:
    """Call the platform once (``list_products``) with the store's credentials, outside the
    shared bucket; returns how many products it holds.

    No transaction is open while the platform is called: the store is read (and its
    credentials decrypted) in one that has ended by then. The whole call has a hard deadline
    (``settings.test_connection_deadline_s``, however slowly the platform trickles its
    answer) and reads at most ``settings.test_connection_max_bytes`` of any answer. Raises
    NotFound when the store is not the org's, ValidationFailed when it is incomplete, and the
    HTTP helper's errors (PermanentError for refused credentials, an oversize answer or a
    destination the hub may not call, RetryableError when unreachable or past the
    deadline)."""
    with database.org_session(org_id) as session:
        store = session.get(Store, store_id)
        if store is None:
            raise NotFound(f"no store {store_id}")
        plugin = get_plugin(store.platform)
        if plugin.level(Capability.LIST_PRODUCTS) == ContractLevel.UNSUPPORTED:
            return 0
        conn = store_connection(settings, store, database=database)
    deadline = Deadline(settings.test_connection_deadline_s)
    session_ = new_session(pool_maxsize=2)
    try:
        http = StoreHttp(
            conn,
            spec=plugin.rate_limit,
            bucket=None,
            transport_attempts=1,
            egress=EgressPolicy.from_settings(settings),
            hosts=egress_hosts(plugin, conn),
            max_answer_bytes=settings.test_connection_max_bytes,
            deadline=deadline,
            session=session_,
        )
        return len(plugin.client(conn, http).list_products())
    finally:
        session_.close()
        deadline.close()
