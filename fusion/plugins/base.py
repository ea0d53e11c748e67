"""The plugin interface: what a marketplace adapter declares and what it can do.

A plugin is discovered through the ``fusion.plugins`` entry-point group (the built-in four are
registered the same way in ``pyproject.toml``), declares its capabilities with a level each,
its rate limit and its auth type, and makes a :class:`PlatformClient` for one store. Clients
speak the platform's real wire format through the shared :class:`HttpClient` port, which
takes rate-limit tokens before each call and never logs credentials.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from fusion.errors import PermanentError, UnsupportedCapability
from fusion.plugins.models import ContractLevel
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.security.crypto import Secret


class Capability(enum.StrEnum):
    LIST_PRODUCTS = "list_products"
    CREATE_PRODUCT = "create_product"
    UPDATE_PRODUCT = "update_product"
    DELETE_PRODUCT = "delete_product"
    BULK_OPERATIONS = "bulk_operations"
    REAL_TIME_INVENTORY = "real_time_inventory"
    ORDER_WEBHOOKS = "order_webhooks"


class AuthType(enum.StrEnum):
    OAUTH = "oauth"
    API_KEY = "api_key"


class SettingType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    URL = "url"  # an http(s) URL
    OBJECT = "object"  # a JSON object, passed to the plugin as it is


@dataclass(frozen=True)
class SettingSpec:
    """One store setting a plugin reads: the declaration the API validates a store's
    ``settings`` against and the one place its default lives.

    ``secret`` settings are never stored in (or shown with) ``settings``: they belong in the
    store's encrypted credentials. ``destination`` marks a URL the hub itself sends requests
    to, which must pass the egress rules when it is saved. ``minimum``/``maximum`` bound a
    number (inclusive); ``choices`` lists the values a string may take."""

    name: str
    type: SettingType
    description: str
    required: bool = False
    default: Any = None
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    destination: bool = False

    def value(self, settings: Mapping[str, Any]) -> Any:
        """The store's value of this setting, or the declared default when it is unset (absent,
        None, or an empty string)."""
        raw = settings.get(self.name)
        return self.default if raw is None or raw == "" else raw


class StoreMemo(Protocol):
    """What a client remembers of its store's platform between jobs: ids the platform gave
    (Shopify's location and SKU -> inventory item ids) or what it last read (an Etsy listing's
    inventory, for a short while), shared by every worker of the store,
    each entry forgotten after a while on its own. A cache: a miss, or a memo that stores
    nothing, only costs the client a lookup. Never secrets (the memo is not encrypted)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """The remembered values of ``keys`` (those not remembered are left out)."""
        ...

    def put_many(self, values: Mapping[str, str], *, ttl_s: float | None = None) -> None:
        """Remember ``values``, each for ``ttl_s`` (else the memo's time to live) from now."""
        ...

    def forget(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` (a stale id the platform no longer knows)."""
        ...


class NullMemo:
    """A memo that remembers nothing: every lookup goes to the platform."""

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        return {}

    def put_many(self, values: Mapping[str, str], *, ttl_s: float | None = None) -> None:
        return None

    def forget(self, keys: Sequence[str]) -> None:
        return None


NULL_MEMO = NullMemo()


@dataclass(frozen=True)
class StoreConnection:
    """One store as a client sees it; ``credentials`` are decrypted only for the call.

    ``renew`` (when the hub can keep new credentials) swaps them for fresh ones once, for
    every worker at a time: see :class:`CredentialRenewer`.
    ``memo`` is the store's shared memo of platform ids (nothing remembered by default)."""

    store_id: str
    org_id: str
    platform: str
    external_id: str
    base_url: str
    credentials: Mapping[str, Secret] = field(repr=False)
    settings: Mapping[str, Any] = field(default_factory=dict)
    renew: CredentialRenewer | None = field(default=None, repr=False, compare=False)
    memo: StoreMemo = field(default=NULL_MEMO, repr=False, compare=False)


# Given the store's credentials as they are now, the new ones to keep (every key, plain
# strings), or None when they are already good (another worker renewed them meanwhile).
CredentialExchange = Callable[[Mapping[str, Secret]], Mapping[str, str] | None]


class CredentialRenewer(Protocol):
    """Runs ``exchange`` under the store's lock with the credentials as stored then, keeps
    (encrypted) what it returns, and returns the store's credentials after it. A
    ReauthorisationNeeded raised by ``exchange`` marks the store as needing the merchant
    to connect it again, and propagates."""

    def __call__(self, exchange: CredentialExchange) -> Mapping[str, Secret]: ...


@dataclass(frozen=True)
class VariantDraft:
    sku: str
    price: Decimal
    quantity: int
    title: str = ""
    # The variant's attributes the store maps, under the platform's names (attribute or
    # option name -> value): fusion.stores.catalog_rules.
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductDraft:
    """A catalog product as the hub wants it on a platform."""

    title: str
    variants: Sequence[VariantDraft]
    description: str = ""
    currency: str = "USD"
    # Stable across retries (the listing id): a retried create never makes a second product.
    idempotency_key: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # The product's images, first first (:class:`ImageDraft`), and what the listing's last
    # push left on the platform (image key -> the platform's id of it): a client sends what
    # changed between the two, and with neither it leaves the platform's images alone.
    images: Sequence[ImageDraft] = ()
    sent_images: Mapping[str, str] = field(default_factory=dict)
    # The platform's category the store maps the product's to (None: the store maps none),
    # and the hub's own, to name in the error of a platform that requires one.
    category: str | None = None
    hub_category: str = ""

    def required_category(self, platform: str, field_name: str) -> str:
        """The mapped category, for a platform that requires ``field_name``; raises
        PermanentError naming the field when the store maps none."""
        if self.category:
            return self.category
        shown = f"'{self.hub_category}'" if self.hub_category else "(none)"
        raise PermanentError(
            f"{field_name} is required by {platform} and no mapping fills it: the product's "
            f'category {shown} has no entry (and no "*" entry) in the store\'s '
            "catalog_rules.categories"
        )


@dataclass(frozen=True)
class RemoteProduct:
    external_id: str
    title: str
    quantities: Mapping[str, int]  # sku -> available quantity on the platform
    url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Each variant as the platform describes it (adoption matches them to the catalog); empty
    # from a plugin that does not say.
    variants: Sequence[RemoteVariant] = ()


@dataclass(frozen=True)
class InventoryUpdate:
    sku: str
    quantity: int
    external_id: str | None = None  # the platform's product/listing id, when known


class PushRefused(PermanentError):
    """The platform took some quantities of a push and refused others: ``accepted`` were set,
    ``refused`` maps each refused SKU to the platform's reason. Permanent: sending the same
    figures again would be refused again."""

    def __init__(
        self, message: str, *, accepted: Sequence[InventoryUpdate], refused: Mapping[str, str]
    ) -> None:
        super().__init__(message)
        self.accepted = list(accepted)
        self.refused = dict(refused)


@dataclass(frozen=True)
class ItemRefusal:
    """An item of a bulk call that the platform did not take: refused with the platform's
    reason, or skipped (``skipped``: e.g. no listing holds the SKU) with why."""

    sku: str
    reason: str
    skipped: bool = False


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal
    external_line_id: str | None = None


@dataclass(frozen=True)
class RemoteOrder:
    external_id: str
    lines: Sequence[OrderLine]
    total: Decimal
    currency: str
    status: str
    placed_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    cancelled: bool = False  # the stock it took goes back (fusion.orders.service)
    # When the platform last changed the order (its updated_at, event time): a status older
    # than the one the hub holds never replaces it (deliveries are unordered and replayable).
    updated_at: datetime | None = None
    # Shipments the platform made itself (Printify fulfils its own orders), read back.
    shipments: Sequence[RemoteShipment] = ()


@dataclass(frozen=True)
class WebhookEvent:
    delivery_id: str
    topic: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body or b"null")


class HttpClient(Protocol):
    """The one way a client calls its platform (``fusion/plugins/http.py`` implements it).

    ``request`` takes ``cost`` tokens from the store's shared bucket first (raising
    ``RateLimited`` when short), applies timeouts and transport retries, maps 429 to
    ``RateLimited``, 5xx/timeouts to ``RetryableError`` and other 4xx to ``PermanentError``
    (unless ``expect`` lists the status), and feeds the platform's rate-limit headers back into
    the bucket. ``feedback`` lets a client report quota it read from a body (Shopify's
    ``throttleStatus``)."""

    def request(
        self,
        method: str,
        path: str,
        *,
        call: ApiCall,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        expect: Sequence[int] = (),
    ) -> HttpResponse: ...

    def feedback(
        self,
        *,
        available: float | None = None,
        retry_after_s: float | None = None,
        capacity: float | None = None,
        refill_rate: float | None = None,
    ) -> None: ...

    def has_quota(self, operations: Sequence[str]) -> bool:
        """Whether each of ``operations`` (limited on its own: ``RateLimitSpec.operations``)
        has a token for a call now, so a flow of several calls can start without being cut
        short by one of them. Takes nothing."""
        ...


class PlatformClient(ABC):
    """One store's client for one job. Methods for unsupported capabilities raise
    ``UnsupportedCapability``; workarounds log what they do instead via ``log``."""

    def __init__(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> None:
        self.conn = conn
        self.http = http
        self.log = log or (lambda message: None)

    @abstractmethod
    def list_products(self) -> list[RemoteProduct]: ...

    @abstractmethod
    def create_product(self, draft: ProductDraft) -> RemoteProduct: ...

    @abstractmethod
    def update_product(self, external_id: str, draft: ProductDraft) -> RemoteProduct: ...

    @abstractmethod
    def delete_product(self, external_id: str) -> None: ...

    @abstractmethod
    def set_inventory(self, updates: Sequence[InventoryUpdate]) -> None:
        """Push quantities now (real_time_inventory, or the sync's per-item path)."""

    @abstractmethod
    def bulk_set_inventory(
        self, updates: Sequence[InventoryUpdate]
    ) -> Sequence[ItemRefusal] | None:
        """Push many quantities in the platform's bulk way (bulk_operations); returns the
        items the platform refused or that were skipped (None or empty: every one taken)."""

    @abstractmethod
    def fetch_orders(self, since: datetime) -> list[RemoteOrder]:
        """Orders changed since ``since`` (the reconciliation pull behind webhooks)."""

    def subscribe_order_events(self, uri: str, secret: str | None) -> list[str]:
        """Ask the platform to deliver the store's order events to ``uri`` (signed with
        ``secret`` where the platform takes one), skipping subscriptions that exist already;
        returns the topics added. Raises UnsupportedCapability where the platform has no API
        for it (the default)."""
        raise UnsupportedCapability(self.conn.platform, "webhook_subscriptions")

    def complete_event(self, event: WebhookEvent) -> WebhookEvent:
        """``event`` with what the platform left out of it read back from its API, for an
        event ``Plugin.needs_lookup`` names (Amazon: the prices; Printify: the line items).
        Unchanged by default."""
        return event

    def list_products_page(self, cursor: str | None) -> ProductPage:
        """One page of the store's products from ``cursor`` (None: the first page), with the
        cursor of the next (None after the last), so a reader can keep its place between
        attempts. By default the whole of :meth:`list_products` is one page."""
        return ProductPage(products=self.list_products(), next_cursor=None)

    def ship_order(self, shipment: Shipment) -> ShipmentAnswer:
        """Mark ``shipment``'s lines of its order shipped on the platform, with its carrier
        and tracking. Safe to call again after a lost answer: a shipment the platform already
        holds (found by its tracking number or reference) is answered with ``already`` set,
        never made twice. Raises PermanentError with the platform's reason when it refuses,
        UnsupportedCapability where the platform ships its own orders (the default)."""
        raise UnsupportedCapability(self.conn.platform, "fulfilment")


@dataclass
class ConsumeResult:
    """What reading an order notification queue did, for logs and tests."""

    received: int = 0
    handled: int = 0
    duplicates: int = 0
    invalid: int = 0
    failed: int = 0

    def add(self, other: ConsumeResult) -> None:
        for name in ("received", "handled", "duplicates", "invalid", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class OrderQueue(Protocol):
    """A store's order notification queue (for platforms that deliver order events by queue
    rather than by webhook). Each new event goes to the ``handle`` it was made with; a message
    leaves the queue only after ``handle`` returned."""

    def drain(self, *, max_polls: int = 100) -> ConsumeResult:
        """Read until the queue answers empty (or ``max_polls`` reads); the totals."""
        ...

    def listen(self, *, seconds: float, between: Callable[[], None] = ...) -> ConsumeResult:
        """Read the queue continuously for ``seconds`` (long polls: each event is handed on as
        soon as it arrives, an idle queue costs little), running ``between()`` before each
        read; the totals."""
        ...


class Plugin(ABC):
    slug: str
    name: str
    version: str
    auth_type: AuthType
    capabilities: Mapping[Capability, ContractLevel]
    rate_limit: RateLimitSpec
    # The store settings the plugin reads (the API accepts exactly these in a store's
    # ``settings``, GET /plugins/{slug} lists them).
    settings: tuple[SettingSpec, ...] = ()
    # Hosts besides the store's base URL's that URLs the platform hands back may name (upload
    # targets, result files, pre-signed documents): exact names, or ``*.domain`` for any
    # name under it. The HTTP helper refuses an absolute URL on any other host before it
    # connects, and every destination still passes the egress rules.
    egress_hosts: tuple[str, ...] = ()
    # The store setting naming the store's order notification queue, on platforms that send
    # order events to a queue (Amazon: SQS) instead of webhooks; None for the others.
    order_queue_setting: str | None = None
    # The platform ships the store's orders itself (Printify prints and ships them): the hub
    # sends it no fulfilment, it reads the platform's shipments back with the order.
    ships_own_orders: bool = False

    def setting(self, name: str) -> SettingSpec | None:
        """The declaration of the store setting ``name``, or None if the plugin reads none."""
        return next((spec for spec in self.settings if spec.name == name), None)

    def level(self, capability: Capability) -> ContractLevel:
        return self.capabilities.get(capability, ContractLevel.UNSUPPORTED)

    @abstractmethod
    def client(
        self, conn: StoreConnection, http: HttpClient, log: Callable[[str], None] | None = None
    ) -> PlatformClient: ...

    @abstractmethod
    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent:
        """Check the signature over the raw ``body`` (constant-time) and freshness; return the
        event, or raise ``PermanentError`` naming what is wrong (never echoing the secret)."""

    @abstractmethod
    def delivery_is_for(
        self, headers: Mapping[str, str], event: WebhookEvent, external_id: str
    ) -> bool:
        """Whether a verified delivery (or queued notification: no ``headers``) says it is for
        the shop ``external_id``, the store its URL (or queue) names. False when it names
        another shop, and when it names none: every platform the hub speaks to names its
        shop in each delivery, and an app secret shared by several shops must not let one
        shop's events in as another's."""

    @abstractmethod
    def order_from_event(self, event: WebhookEvent) -> RemoteOrder | None:
        """The order a webhook event carries, or None for a topic the hub ignores."""

    def refund_from_event(self, event: WebhookEvent) -> RemoteRefund | None:
        """The refund of single order lines a webhook event reports, or None (the default,
        and for every other topic)."""
        return None

    def needs_lookup(self, event: WebhookEvent) -> bool:
        """Whether ``event`` is about an order but lacks what the hub needs of it, so that
        processing it must first call ``PlatformClient.complete_event``. False by default."""
        return False

    def stock_before_lookup(self, event: WebhookEvent) -> bool:
        """Whether an event that :meth:`needs_lookup` already names every line's SKU and
        quantity, so its stock is taken at once and the lookup (rate-limited on some
        platforms) only adds what the stock does not depend on, such as prices, afterwards.
        False by default: the lookup comes first."""
        return False

    def order_queue(
        self, client: PlatformClient, handle: Callable[[WebhookEvent], None]
    ) -> OrderQueue:
        """The queue ``client``'s store receives order events on, handing each new one to
        ``handle``. Raises UnsupportedCapability on a platform without one (the default), and
        PermanentError when the store names no queue in ``order_queue_setting``."""
        raise UnsupportedCapability(self.slug, "order_queue")


@dataclass(frozen=True)
class RemoteVariant:
    """One variant of a platform's product: its SKU (may be empty), price, barcode, stock."""

    sku: str
    quantity: int
    price: Decimal | None = None
    barcode: str | None = None
    title: str = ""


@dataclass(frozen=True)
class ProductPage:
    """A page of :meth:`PlatformClient.list_products_page`."""

    products: Sequence[RemoteProduct]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ImageDraft:
    """One image of a draft, as a platform takes it: by URL (``url``, one the platform can
    fetch without the hub's credentials; None when the hub has no address platforms reach)
    or by its bytes (``read()``). ``key`` (the hub's image id) names the same bytes for ever,
    so ``ProductDraft.sent_images`` tells a client which it sent before. A client reports the
    ids the platform holds after its push in ``RemoteProduct.raw[IMAGES]`` (key -> id)."""

    key: str
    sha256: str
    content_type: str
    filename: str
    read: Callable[[], bytes] = field(repr=False, compare=False)
    url: str | None = field(default=None, repr=False, compare=False)
    alt: str = ""


# The key of RemoteProduct.raw (and of a listing's platform data) mapping each image's key to
# the platform's id of it (not "images": platforms' own product shapes use that name).
IMAGES = "image_ids"

# -- fulfilment and returns ----------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentLine:
    """Units of one order line in a shipment. ``shipped_before`` is what the hub's earlier
    shipments of that line took, so a platform that only counts shipped units (Amazon) can
    tell whether this one is already there."""

    external_line_id: str
    sku: str
    quantity: int
    shipped_before: int = 0


@dataclass(frozen=True)
class Shipment:
    """Lines of an order shipped, as the hub asks a platform to record them. ``reference``
    is the hub's fulfilment id: the same on every retry."""

    reference: str
    order_external_id: str
    carrier: str
    tracking_number: str
    lines: Sequence[ShipmentLine]
    tracking_url: str | None = None


@dataclass(frozen=True)
class ShipmentAnswer:
    """What the platform answered: its id of the shipment and its answer as it gave it;
    ``already`` when it held the shipment already (a retry after a lost answer)."""

    external_id: str | None
    answer: Mapping[str, Any]
    already: bool = False


@dataclass(frozen=True)
class RemoteShipment:
    """A shipment a platform made of an order itself, read back (all of the order's lines)."""

    external_id: str
    carrier: str
    tracking_number: str
    tracking_url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundLine:
    """Units of one order line refunded; ``key`` names this refund line on the platform, so
    a redelivered refund is recognised; ``restock`` False when the merchant keeps the units
    out of stock (Shopify's ``no_restock``)."""

    external_line_id: str
    quantity: int
    key: str
    restock: bool = True


@dataclass(frozen=True)
class RemoteRefund:
    order_external_id: str
    lines: Sequence[RefundLine]
    raw: Mapping[str, Any] = field(default_factory=dict)
