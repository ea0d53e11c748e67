"""``fusion users create`` and ``fusion orgs create``: the first owner, from the shell;
``fusion users set-password`` for someone who forgot theirs (the hub sends no email); and
``fusion users reset-mfa`` for someone who lost both their authenticator and recovery codes."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from fusion.auth import mfa, sessions
from fusion.auth.access import ActorType, Principal
from fusion.auth.models import User
from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError, Conflict, ValidationFailed
from fusion.orgs import service as orgs


@contextmanager
def _hub_database() -> Iterator[Database]:
    """The hub's database for one command; a refusal (a taken email, a weak password) ends
    the command with its message and exit status 1."""
    settings = Settings.from_env()
    if not settings.app_database_url:
        raise ConfigError("FUSION_DATABASE_URL: not set")
    database = Database(
        settings.app_database_url, prepared_statements=settings.db_prepared_statements
    )
    try:
        yield database
    except (Conflict, ValidationFailed) as exc:
        fields = exc.fields if isinstance(exc, ValidationFailed) else {}
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
        click.echo(f"fusion: {exc}{' ' + details if details else ''}", err=True)
        sys.exit(1)
    finally:
        database.dispose()


def _existing_user(session: Session, email: str) -> User:
    """The account with ``email``; ends the command with exit status 1 when there is none."""
    user = sessions.find_user_by_email(session, email)
    if user is None:
        click.echo(f"fusion: no account with email {email}", err=True)
        sys.exit(1)
    return user


@click.group()
def users() -> None:
    """People who log in."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", "display_name", default="", help="Display name.")
@click.password_option(help="Prompted (twice) when not given.")
def create_user(email: str, display_name: str, password: str) -> None:
    """Create an account (then add it to an org with ``fusion orgs create``)."""
    with _hub_database() as database:
        with database.system_session() as session:
            user = sessions.create_user(
                session, email=email, password=password, display_name=display_name
            )
        click.echo(f"created user {user.id} <{user.email}>")


@users.command("set-password")
@click.option("--email", required=True)
@click.password_option(help="Prompted (twice) when not given.")
def set_password(email: str, password: str) -> None:
    """Set an account's password; every login session of theirs ends."""
    with _hub_database() as database:
        with database.system_session() as session:
            user = _existing_user(session, email)
            sessions.set_password(session, user, password)
        click.echo(f"password set for {user.email}; their sessions have ended")


@users.command("reset-mfa")
@click.option("--email", required=True)
def reset_mfa(email: str) -> None:
    """Turn an account's second factor off (a lost phone and lost recovery codes); every
    login session of theirs ends. Check who is asking first: this is the factor's way round."""
    with _hub_database() as database:
        with database.system_session() as session:
            user = _existing_user(session, email)
            had = mfa.has_mfa(session, user.id)
            mfa.remove_factors(session, user.id)
            sessions.end_all_sessions(session, user.id)
        state = "was on" if had else "was not on"
        click.echo(f"multi-factor sign-in removed for {user.email} (it {state}); sessions ended")


@click.group("orgs")
def orgs_group() -> None:
    """Organisations."""


@orgs_group.command("create")
@click.option("--name", required=True)
@click.option("--owner-email", required=True, help="An existing account; it becomes the owner.")
def create_org(name: str, owner_email: str) -> None:
    """Create an organisation owned by an existing account."""
    with _hub_database() as database:
        with database.system_session() as session:
            user = _existing_user(session, owner_email)
        org_id = uuid.uuid4()
        with database.org_session(org_id) as session:
            org = orgs.create_org(
                session, org_id=org_id, name=name, owner=Principal(ActorType.USER, user.id)
            )
        click.echo(f"created org {org.id} ({org.slug}) owned by {user.email}")
