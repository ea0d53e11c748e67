"""The whole schema: imports every model so that ``Base.metadata`` knows every table (Alembic,
start-up, tests). It sits above the domains, which never import it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column

from fusion.approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from fusion.audit.models import AuditLog
from fusion.auth.models import (
    ApiKey,
    LoginChallenge,
    OrgMember,
    RecoveryCode,
    RefreshToken,
    Role,
    TotpFactor,
    User,
)
from fusion.catalog.models import Listing, ListingStatus, Product, ProductStatus, ProductVariant
from fusion.db.base import Base
from fusion.inventory.models import ListingStock, MovementKind, StockMovement
from fusion.jobs.models import ItemStatus, Job, JobItem, JobLog, JobStatus, LogLevel
from fusion.notifications.models import (
    DeliveryState,
    NotificationChannel,
    NotificationDelivery,
)
from fusion.onboarding.models import CatalogImport, ImportRow, ImportStatus
from fusion.orders.models import Order, OrderLine
from fusion.orgs.models import Invitation, InvitationStatus, Org
from fusion.plugins.models import ContractLevel, PluginContract, PluginInstance, PluginRecord
from fusion.stores.models import Store, StoreStatus
from fusion.webhooks.models import DeliveryStatus, WebhookDelivery

# Tables whose rows belong to one org: every one has RLS keyed on fusion.org_id.
TENANT_TABLES: tuple[str, ...] = tuple(
    sorted(t.name for t in Base.metadata.sorted_tables if "org_id" in t.c)
)
# orgs itself is isolated too, by its id.
RLS_TABLES: tuple[str, ...] = ("orgs", *TENANT_TABLES)


def _column(table: str, name: str) -> Column[Any]:
    return Base.metadata.tables[table].c[name]


# Every column holding a Fernet token (``fusion.db.base.FernetToken``): the one list
# ``fusion keys rotate`` walks to move secrets onto the newest key. A new secret column is
# added here (tests/security/test_rotation.py fails on a FernetToken column missing from it).
ENCRYPTED_COLUMNS: tuple[Column[Any], ...] = (
    _column("stores", "credentials_encrypted"),
    _column("stores", "webhook_secret_encrypted"),
    _column("notification_channels", "secret_encrypted"),
    _column("totp_factors", "secret_encrypted"),
)

__all__ = [
    "ENCRYPTED_COLUMNS",
    "RLS_TABLES",
    "TENANT_TABLES",
    "ApiKey",
    "Approval",
    "ApprovalPolicy",
    "ApprovalStatus",
    "AuditLog",
    "Base",
    "CatalogImport",
    "ContractLevel",
    "DeliveryState",
    "DeliveryStatus",
    "ImportRow",
    "ImportStatus",
    "Invitation",
    "InvitationStatus",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobLog",
    "JobStatus",
    "Listing",
    "ListingStatus",
    "ListingStock",
    "LogLevel",
    "LoginChallenge",
    "MovementKind",
    "NotificationChannel",
    "NotificationDelivery",
    "Order",
    "OrderLine",
    "Org",
    "OrgMember",
    "PluginContract",
    "PluginInstance",
    "PluginRecord",
    "Product",
    "ProductStatus",
    "ProductVariant",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "StockMovement",
    "Store",
    "StoreStatus",
    "TotpFactor",
    "User",
    "WebhookDelivery",
]
