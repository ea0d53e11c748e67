"""The ``fusion`` command. Each command group lives in its own module of this package."""

from __future__ import annotations

import sys

import click

from fusion.errors import ConfigError


class FusionGroup(click.Group):
    """Turns configuration errors into a one-line message and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"fusion: configuration error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=FusionGroup)
def cli() -> None:
    """Fusion Stage Hub: one catalog and one stock figure across every channel."""


def _register() -> None:
    from fusion.cli.audit import audit_group
    from fusion.cli.db import db
    from fusion.cli.keys import keys
    from fusion.cli.plugins import plugins
    from fusion.cli.sandbox import sandbox
    from fusion.cli.up import up
    from fusion.cli.users import orgs_group, users
    from fusion.cli.worker import beat, worker

    cli.add_command(audit_group)
    cli.add_command(db)
    cli.add_command(keys)
    cli.add_command(users)
    cli.add_command(orgs_group)
    cli.add_command(plugins)
    cli.add_command(sandbox)
    cli.add_command(up)
    cli.add_command(worker)
    cli.add_command(beat)


_register()
