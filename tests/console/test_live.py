"""The console's live stream on the one origin a person opens: the API's own process (as
``api.wsgi`` builds it) serves the console's stream, a few at once, while the API's stream
path stays the streams process's (421)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.context import Serves
from api.events import API_PROCESS_STREAMS
from fusion.config import Settings
from fusion.jobs import dispatch
from tests.api.conftest import make_team
from tests.console.conftest import person


@pytest.fixture(scope="module")
def api_process(api_settings: Settings) -> Iterator[Flask]:
    """The app of the API's gunicorn (``api.wsgi``: everything but the streams process's)."""
    previous = dispatch.installed()
    app = create_app(api_settings, serves=Serves.API)
    app.config["TESTING"] = True
    yield app
    dispatch.install(previous)
    app.extensions["fusion"].database.dispose()


def test_the_api_process_serves_the_consoles_stream_within_its_cap(
    api_process: Flask, client: FlaskClient
) -> None:
    team = make_team(client, "Alpha")
    owner = person(api_process, team.owner)
    path = f"/console/orgs/{team.org_id}/events"
    # The API's own stream path is still answered 421 by this process
    misdirected = api_process.test_client().get(
        f"/orgs/{team.org_id}/events", headers=team.owner.headers
    )
    assert misdirected.status_code == 421
    # Given the console's streams open in the API's process up to its cap
    opened = [owner.client.get(path, buffered=False) for _ in range(API_PROCESS_STREAMS)]
    try:
        for answer in opened:
            assert answer.status_code == 200
            assert answer.mimetype == "text/event-stream"
            assert next(iter(answer.response)) == b"retry: 2000\n\n"
        # When one more is asked for, it is refused (not queued on a request thread)
        refused = owner.client.get(path)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "At most" in refused.get_data(as_text=True)
        # And once a page is left (its stream closed), the next one is served
        opened.pop().close()
        again = owner.client.get(path, buffered=False)
        opened.append(again)
        assert again.status_code == 200
    finally:
        for answer in opened:
            answer.close()


def test_a_person_over_the_stream_cap_gets_a_429_page(
    api_process: Flask, client: FlaskClient, app: Flask
) -> None:
    """The caller's cap (FUSION_STREAMS_PER_PRINCIPAL, 3) answered as the API answers it: a
    429 with Retry-After, not a failed page."""
    team = make_team(client, "Alpha")
    owner = person(app, team.owner)  # everything in one process: no process cap
    path = f"/console/orgs/{team.org_id}/events"
    cap = app.extensions["fusion"].settings.streams_per_principal
    opened = [owner.client.get(path, buffered=False) for _ in range(cap)]
    try:
        assert [a.status_code for a in opened] == [200] * cap
        refused = owner.client.get(path)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
    finally:
        for answer in opened:
            answer.close()
