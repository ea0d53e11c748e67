"""A real headless Chromium (Debian's ``chromium`` package, driven by Playwright; never a
downloaded browser) against the hub as ``fusion up`` serves it (the API's gunicorn and the
streams' gunicorn, started from ``hub_services``; the browser opens the API's origin alone),
with a real Celery worker and beat and the Shopify sandbox.

Every page the tests open fails the test on a request to any host but loopback (the request is
aborted and recorded) and on any console error or uncaught exception; each test saves a
screenshot (``FUSION_CONSOLE_SCREENSHOTS`` names a folder to keep them in; the tests' own tmp
folder otherwise)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from fusion.config import Settings
from fusion.sandbox import SandboxServer
from tests.plugins.e2e import Processes, sandboxes, worker_env, workers_and_beat
from tests.support.api import PASSWORD
from tests.support.serving import served

CHROMIUM = os.environ.get("FUSION_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Hub:
    url: str
    shopify: SandboxServer
    processes: Processes


@pytest.fixture(scope="module")
def hub(
    settings: Settings, hub_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    """The API's and the streams' gunicorn as ``fusion up`` runs them (the pages and their live
    updates both from the API's origin), one worker on every queue the scenarios use, beat,
    and the Shopify sandbox."""
    logs = tmp_path_factory.mktemp("console-hub")
    with (
        served(hub_env, logs, FUSION_REQUEST_QUOTA_PER_MINUTE="100000") as urls,
        sandboxes(["shopify"]) as started,
        # As `fusion up` gives its children: the API's address is the hub's public URL.
        workers_and_beat(
            worker_env(hub_env, FUSION_PUBLIC_URL=urls["api"]), "default,shopify", concurrency=4
        ) as procs,
    ):
        yield Hub(urls["api"], started["shopify"], procs)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), (
        f"{CHROMIUM} is missing: bin/setup installs Debian's chromium (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        yield browser
        browser.close()


def _launch(playwright: Playwright) -> Browser:
    # --no-sandbox: CI runs as root, where Chromium's own sandbox cannot start.
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


@dataclass
class Tab:
    """One signed-in person's browser tab, watched for outside requests and console errors."""

    page: Page
    hub: Hub
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        self.page.goto(self.hub.url + path)
        return self.page

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.open("/console/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/console/orgs/**")


class Browsers:
    def __init__(self, browser: Browser, hub: Hub, shots: Path) -> None:
        self.browser, self.hub, self.shots = browser, hub, shots
        self.contexts: list[BrowserContext] = []
        self.tabs: list[Tab] = []

    def tab(self, context: BrowserContext | None = None) -> Tab:
        if context is None:
            context = self.browser.new_context(viewport={"width": 1280, "height": 900})
            self.contexts.append(context)
        tab = Tab(context.new_page(), self.hub)
        tab.page.route("**/*", lambda route: self._only_loopback(tab, route))
        tab.page.on("console", lambda msg: _console(tab, msg))
        tab.page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        self.tabs.append(tab)
        return tab

    @staticmethod
    def _only_loopback(tab: Tab, route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if urlsplit(route.request.url).scheme in ("data", "blob") or host in LOOPBACK:
            route.continue_()
        else:
            tab.outside.append(route.request.url)
            route.abort()

    def close(self, name: str) -> None:
        for i, tab in enumerate(self.tabs):
            if not tab.page.is_closed():
                tab.page.screenshot(path=str(self.shots / f"{name}-{i}.png"), full_page=True)
        for context in self.contexts:
            context.close()
        for tab in self.tabs:
            assert not tab.outside, f"requests left loopback: {tab.outside}"
            assert not tab.errors, f"console errors: {tab.errors}"


def _console(tab: Tab, msg: Any) -> None:
    if msg.type == "error":
        tab.errors.append(f"console: {msg.text}")


@pytest.fixture
def browsers(
    chromium: Browser, hub: Hub, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Browsers]:
    kept = os.environ.get("FUSION_CONSOLE_SCREENSHOTS")
    shots = Path(kept) if kept else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    found = Browsers(chromium, hub, shots)
    yield found
    found.close(request.node.name)
