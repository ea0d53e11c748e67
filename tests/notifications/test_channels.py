"""Managing channels over the HTTP API: owners only, each org sees its own, bad input is a
422 naming the field, the egress guard refuses private destinations where private egress is
off, and a webhook channel's signing secret is shown once and stored encrypted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.plugins.http import post_once
from fusion.security.egress import EgressPolicy, EgressRefused
from tests.api.conftest import Team, count_rows, make_team
from tests.notifications.receivers import HttpReceiver
from tests.support.api import running_app
from tests.support.egress import LOOPBACK

HOOK = {"name": "ERP", "kind": "webhook", "events": ["stock.out"]}


def _channels(team: Team) -> str:
    return f"/orgs/{team.org_id}/notification-channels"


def test_only_owners_manage_channels(client: FlaskClient, receiver: HttpReceiver) -> None:
    team = make_team(client, "Roles")
    body = {**HOOK, "target": receiver.url + "/roles"}
    # A viewer and an operator may not create one
    for caller in (team.viewer, team.operator):
        refused = caller.post(_channels(team), json=body)
        assert refused.status_code == 403, refused.json
    assert team.viewer.get(_channels(team)).json["items"] == []
    # The owner may; the viewer may read it but neither change nor test it
    made = team.owner.post(_channels(team), json=body)
    assert made.status_code == 201, made.json
    one = f"{_channels(team)}/{made.json['id']}"
    assert team.viewer.get(one).status_code == 200
    assert team.viewer.call("PATCH", one, json={"enabled": False}).status_code == 403
    assert team.operator.post(f"{one}/test").status_code == 403
    assert team.viewer.get(one).json["enabled"] is True


def test_another_org_cannot_see_or_touch_the_channels(
    client: FlaskClient, receiver: HttpReceiver
) -> None:
    alpha, bravo = make_team(client, "Alpha"), make_team(client, "Bravo")
    made = alpha.owner.post(_channels(alpha), json={**HOOK, "target": receiver.url + "/a"})
    assert made.status_code == 201, made.json
    channel_id = made.json["id"]
    # Bravo's owner lists nothing and finds nothing under Alpha's id, in their own org
    assert bravo.owner.get(_channels(bravo)).json["items"] == []
    mine = f"{_channels(bravo)}/{channel_id}"
    assert bravo.owner.get(mine).status_code == 404
    assert bravo.owner.call("PATCH", mine, json={"name": "x"}).status_code == 404
    assert bravo.owner.post(f"{mine}/test").status_code == 404
    assert bravo.owner.call("DELETE", mine).status_code == 404
    deliveries = f"/orgs/{bravo.org_id}/notification-deliveries"
    assert bravo.owner.get(deliveries, query_string={"channel_id": channel_id}).status_code == 404
    # and Alpha's own URL is refused to them outright
    assert bravo.owner.get(f"{_channels(alpha)}/{channel_id}").status_code in (403, 404)
    assert alpha.viewer.get(f"{_channels(alpha)}/{channel_id}").json["name"] == "ERP"


def test_bad_input_names_the_field(client: FlaskClient, receiver: HttpReceiver) -> None:
    team = make_team(client, "Typos")
    cases = [
        ({**HOOK, "target": receiver.url, "events": ["stock.gone"]}, "events"),
        ({**HOOK, "target": receiver.url, "events": []}, "events"),
        ({**HOOK, "target": "ftp://example.test/x"}, "target"),
        ({**HOOK, "kind": "email", "target": "not-an-address"}, "target"),
        ({**HOOK, "kind": "pager", "target": receiver.url}, "kind"),
        ({**HOOK, "target": receiver.url, "thresholds": {"sync_late_minutes": 0}}, "thresholds"),
        ({**HOOK, "target": receiver.url, "thresholds": {"mood": 3}}, "thresholds"),
        ({**HOOK, "target": receiver.url, "org_id": str(team.org_id)}, "org_id"),
        ({"name": "x", "kind": "webhook", "target": receiver.url}, "events"),
    ]
    for body, field in cases:
        refused = team.owner.post(_channels(team), json=body)
        assert refused.status_code == 422, (body, refused.json)
        assert field in refused.json["errors"], (body, refused.json)
    assert team.owner.get(_channels(team)).json["items"] == []
    # A change is held to the same rules as the channel's kind
    email = team.owner.post(
        _channels(team), json={**HOOK, "kind": "email", "target": "ops@example.test"}
    )
    hook = team.owner.post(_channels(team), json={**HOOK, "target": receiver.url})
    for made, target in ((email, "ops@example.test\nBcc: all@example.test"), (hook, "ftp://x/y")):
        one = f"{_channels(team)}/{made.json['id']}"
        refused = team.owner.call("PATCH", one, json={"target": target})
        assert refused.status_code == 422 and "target" in refused.json["errors"], refused.json
        assert team.owner.get(one).json["target"] == made.json["target"]


def test_the_signing_secret_is_shown_once_and_stored_encrypted(
    client: FlaskClient, receiver: HttpReceiver, admin_engine: Engine
) -> None:
    team = make_team(client, "Secrets")
    made = team.owner.post(_channels(team), json={**HOOK, "target": receiver.url + "/s"})
    secret = made.json["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    one = f"{_channels(team)}/{made.json['id']}"
    for shown in (
        team.owner.get(one),
        team.owner.get(_channels(team)),
        team.owner.call("PATCH", one, json={"name": "ERP 2"}),
        team.owner.post(f"{one}/test"),
        team.owner.get(f"/orgs/{team.org_id}/notification-deliveries"),
        team.owner.get(f"/orgs/{team.org_id}/audit"),
    ):
        assert shown.status_code in (200, 202), shown.json
        assert secret not in shown.get_data(as_text=True)
        assert secret.removeprefix("whsec_") not in shown.get_data(as_text=True)
    with admin_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT secret_encrypted FROM notification_channels WHERE id = :id"),
            {"id": made.json["id"]},
        ).scalar_one()
    assert secret.encode() not in bytes(stored)
    # the changes were audited, by the owner
    assert count_rows(admin_engine, "audit_logs", org_id=team.org_id,
                      resource_type="notification_channel") == 2  # fmt: skip


@pytest.fixture(scope="module")
def strict_app(settings: Settings) -> Iterator[Flask]:
    """The API of a production-like hub: private egress off, no SMTP server."""
    strict = dataclasses.replace(
        settings, allow_private_egress=False, request_quota_per_minute=10**6
    )
    with running_app(strict) as app:
        yield app


def test_private_destinations_are_refused_where_private_egress_is_off(
    strict_app: Flask, receiver: HttpReceiver
) -> None:
    team = make_team(strict_app.test_client(), "Strict")
    for target in ("http://127.0.0.1/x", "http://10.0.0.7/hook", "http://169.254.169.254/latest"):
        refused = team.owner.post(_channels(team), json={**HOOK, "target": target})
        assert refused.status_code == 422, refused.json
        [reason] = refused.json["errors"]["target"]
        assert reason.startswith("the hub may not call it: the host resolves to a"), reason
    no_smtp = team.owner.post(
        _channels(team), json={**HOOK, "kind": "email", "target": "ops@example.test"}
    )
    assert no_smtp.status_code == 422 and "kind" in no_smtp.json["errors"]


def test_the_send_path_refuses_a_private_address_before_connecting(receiver: HttpReceiver) -> None:
    # The same guard at delivery time (a channel saved while private egress was allowed)
    assert receiver.server is not None
    strict = EgressPolicy(ports=frozenset({80, 443, receiver.server.server_port}))
    with pytest.raises(EgressRefused, match="the host resolves to a loopback address"):
        post_once(receiver.url + "/never", body=b"{}", headers={}, egress=strict)
    assert receiver.at("/never") == []
    answer = post_once(receiver.url + "/never", body=b"{}", headers={}, egress=LOOPBACK)
    assert answer.status == 200 and len(receiver.at("/never")) == 1
