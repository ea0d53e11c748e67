"""``fusion keys status|rotate``: which stored secrets still need an older encryption key, and
re-encrypting them under the newest so that key can be removed from FUSION_ENCRYPTION_KEYS."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError
from fusion.models import ENCRYPTED_COLUMNS
from fusion.security import rotation


def _owner_database(settings: Settings) -> Database:
    # The owner's URL: walking every org needs key_rotation_org_ids(), which only it may call.
    if not settings.database_url:
        raise ConfigError("FUSION_DATABASE_URL: not set (keys commands run as the owner)")
    return Database(settings.database_url, pool_size=1, max_overflow=0)


def _print(settings: Settings, reports: Sequence[rotation.ColumnReport]) -> bool:
    """Print one line per column and a verdict; True when nothing needs an older key."""
    for r in reports:
        older = ", ".join(f"key #{i + 1}: {n}" for i, n in sorted(r.by_key.items()) if i and n)
        click.echo(
            f"{r.name}: rotated {r.rotated}, newest key {r.newest}, "
            f"older keys {r.left}{f' ({older})' if older else ''}, unreadable {r.unreadable}"
        )
    left = sum(r.left for r in reports)
    unreadable = sum(r.unreadable for r in reports)
    click.echo(f"left under older keys: {left}")
    if unreadable:
        click.echo(f"unreadable with every configured key: {unreadable} (reconnect or re-enrol)")
    if left == 0 and len(settings.encryption_keys) > 1:
        click.echo("every readable secret is under the newest key: the older keys can be removed")
    return left == 0


@click.group("keys")
def keys() -> None:
    """The encryption keys of stored secrets (FUSION_ENCRYPTION_KEYS, newest first)."""


@keys.command("status")
def status() -> None:
    """Count each secret column's tokens per key; exit 1 while any needs an older key."""
    settings = Settings.from_env()
    database = _owner_database(settings)
    try:
        reports = rotation.key_status(database, settings, ENCRYPTED_COLUMNS)
    finally:
        database.dispose()
    if not _print(settings, reports):
        sys.exit(1)


@keys.command("rotate")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=rotation.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows per transaction.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="Re-encrypt at most this many secrets, then stop (run again to go on).",
)
def rotate(batch_size: int, limit: int | None) -> None:
    """Re-encrypt every secret still under an older key with the newest one, in batches.
    Safe to interrupt and to run again: what is done stays done. Exit 1 if any is left."""
    settings = Settings.from_env()
    database = _owner_database(settings)
    try:
        reports = rotation.rotate_all(
            database, settings, ENCRYPTED_COLUMNS, batch_size=batch_size, limit=limit
        )
    finally:
        database.dispose()
    if not _print(settings, reports):
        sys.exit(1)
