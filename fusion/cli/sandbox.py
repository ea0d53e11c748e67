"""``fusion sandbox``: run the platform emulators on loopback until Ctrl-C."""

from __future__ import annotations

import signal
import threading

import click

from fusion.errors import FusionError
from fusion.runtime import extras

# The keys of fusion.sandbox.SANDBOXES (tests/cli/test_sandbox.py keeps them equal), named here
# so that the `fusion` command loads without the sandboxes' packages.
PLATFORMS = ("amazon_sc", "etsy", "printify", "shopify")


@click.command()
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice(PLATFORMS),
    help="Platform to emulate (repeatable); all of them when omitted.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port for a single platform; free ports otherwise.",
)
@click.option(
    "--base-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Fixed ports: the platforms in alphabetical order on this port and the next ones "
    "(amazon_sc, etsy, printify, shopify: 9100-9103 from 9100); free ports otherwise.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
def sandbox(platforms: tuple[str, ...], port: int, base_port: int, host: str) -> None:
    """Start the platform sandboxes and print their URLs."""
    chosen = list(platforms) or list(PLATFORMS)
    if port and len(chosen) > 1:
        raise click.UsageError("--port needs exactly one --platform")
    if port and base_port:
        raise click.UsageError("--port and --base-port exclude each other")
    try:
        extras.require("sandbox", "fusion sandbox")
    except FusionError as exc:
        raise click.ClickException(str(exc)) from exc
    # Only now: the sandboxes need the sandbox extra, which production lacks.
    from fusion.sandbox import SANDBOXES
    from fusion.sandbox.server import SandboxServer

    servers: list[SandboxServer] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for slug in chosen:
            fixed = base_port + sorted(SANDBOXES).index(slug) if base_port else port
            server = SandboxServer(SANDBOXES[slug](), host=host, port=fixed).start()
            servers.append(server)
            click.echo(f"{slug} sandbox: {server.url}")
        click.echo("Ctrl-C to stop.")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for server in servers:
            server.stop()
