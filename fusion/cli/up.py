"""``fusion up``: the whole hub on one machine, with embedded Postgres and Redis by default."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import click

from fusion.config import Settings
from fusion.errors import ConfigError, FusionError
from fusion.runtime import extras
from fusion.runtime.services import child_env, http_address, hub_services
from fusion.runtime.supervisor import STOP_SIGNALS, Supervisor, prefixed

if TYPE_CHECKING:  # imported when run: it needs the embedded extra, which production lacks
    from fusion.runtime.embedded import EmbeddedServers

EXIT_INTERRUPTED = 130


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


@click.command("up")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds each child gets to stop after SIGTERM before it is killed.",
)
def up(grace: float) -> None:
    """Run API, worker, beat, Flower and sandboxes until Ctrl-C or SIGTERM.

    With FUSION_DATABASE_URL / FUSION_REDIS_URL unset, starts PostgreSQL and Redis under
    FUSION_HOME (./.fusion) and keeps their data there. Migrates before starting anything.
    """
    try:
        code = run_hub(Settings.from_env(), grace_s=grace, say=click.echo)
    except ConfigError:
        raise  # the fusion group reports these itself
    except FusionError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


def run_hub(settings: Settings, *, grace_s: float, say: Callable[[str], None]) -> int:
    """Start servers, migrate, supervise the children; stop it all; return the exit code.

    0 after a requested stop, 1 if a child could not be started, 130 if interrupted while
    starting. A child that dies on its own is restarted after a back-off (the supervisor's).
    The embedded servers this started are stopped in every case.
    """
    from fusion.db.migrate import upgrade

    if settings.database_url is None or settings.redis_url is None:
        extras.require(
            "embedded",
            "fusion up",
            otherwise="set FUSION_DATABASE_URL and FUSION_REDIS_URL to servers of your own",
        )
    from fusion.runtime.embedded import EmbeddedServers

    def note(message: str) -> None:
        say(prefixed("fusion", message))

    servers = EmbeddedServers(settings)
    try:
        with _stop_signals_interrupt():
            if servers.postgres or servers.redis:
                note(f"starting the embedded servers under {settings.home}")
            resolved = servers.start()
            note("applying migrations")
            upgrade(resolved)
            services = hub_services(resolved, note=note)
    except KeyboardInterrupt:
        note("interrupted while starting")
        _quiet_stop(servers, note)
        return EXIT_INTERRUPTED
    except BaseException:
        _quiet_stop(servers, note)
        raise
    supervisor = Supervisor(services, env={**os.environ, **child_env(resolved)}, grace_s=grace_s)
    try:
        return supervisor.run(on_started=lambda: _banner(resolved, servers, supervisor.say))
    finally:
        _quiet_stop(servers, note)


def _banner(settings: Settings, servers: EmbeddedServers, say: Callable[[str], None]) -> None:
    assert settings.database_url is not None and settings.redis_url is not None
    pg = "embedded, data in " + str(servers.postgres.data) if servers.postgres else "external"
    redis = "embedded" if servers.redis else "external"
    lines = [
        "Fusion Stage Hub is up:",
        f"  API       http://{http_address(settings.api_host, settings.api_port)}"
        "  (GET /healthz, /readyz)",
        f"  Streams   http://{http_address(settings.api_host, settings.streams_port)}"
        "  (GET /orgs/{org}/events)",
        f"  Flower    http://127.0.0.1:{settings.flower_port}",
        f"  Postgres  {redact(settings.database_url)}  ({pg})",
        f"  Redis     {redact(settings.redis_url)}  ({redis})",
        f"  Home      {settings.home}",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        say(line)


def _quiet_stop(servers: EmbeddedServers, note: Callable[[str], None]) -> None:
    """Stop the servers, ignoring stop signals meanwhile: a half-done stop leaves them running."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        running = servers.running
        if running:
            note("stopping the embedded servers")
        servers.stop()
        if running:
            note("embedded servers stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While starting, SIGTERM and SIGHUP act like Ctrl-C so the cleanup paths run."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
