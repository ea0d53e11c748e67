"""Notifications through the front door: channels created over the HTTP API, events caused
over the HTTP API, deliveries run by a real Celery worker to a real SMTP server and a real
HTTP receiver that checks the Standard Webhooks signature on its own."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import Team, make_team
from tests.api.kit import make_kit
from tests.notifications.conftest import PUBLIC_URL
from tests.notifications.receivers import HttpReceiver, SmtpReceiver, eventually

pytestmark = [
    pytest.mark.usefixtures("worker"),
    pytest.mark.filterwarnings("ignore::celery.exceptions.CPendingDeprecationWarning"),
]


def _channel(team: Team, **body: object) -> dict[str, object]:
    made = team.owner.post(f"/orgs/{team.org_id}/notification-channels", json=body)
    assert made.status_code == 201, made.json
    return made.json


def _hook(
    team: Team, receiver: HttpReceiver, events: list[str], **body: object
) -> tuple[dict[str, object], str]:
    """A signed webhook channel for ``events`` to a fresh path of ``receiver``, which checks
    its signatures: (the channel, the path)."""
    path = f"/hooks/{uuid.uuid4().hex}"
    channel = _channel(team, name="ERP", kind="webhook", target=receiver.url + path,
                       events=events, **body)  # fmt: skip
    receiver.secrets[path] = str(channel["signing_secret"])
    return channel, path


def _deliveries(team: Team, **query: str) -> list[dict[str, object]]:
    listed = team.viewer.get(f"/orgs/{team.org_id}/notification-deliveries", query_string=query)
    assert listed.status_code == 200, listed.json
    return listed.json["items"]


def _settled(team: Team, channel_id: object) -> dict[str, object] | None:
    rows = _deliveries(team, channel_id=str(channel_id))
    return rows[0] if rows and rows[0]["status"] != "pending" else None


def test_an_approval_waiting_for_a_decision_is_emailed(
    client: FlaskClient, admin_engine: Engine, smtp: SmtpReceiver
) -> None:
    team = make_team(client, "Mailers")
    org = f"/orgs/{team.org_id}"
    kit = make_kit(admin_engine, team.org_id, None)
    approvers = f"approvers-{uuid.uuid4().hex[:8]}@example.test"
    # Given an email channel for approvals waiting, and publishing needs approval
    channel = _channel(team, name="Approvers", kind="email", target=approvers,
                       events=["approval.waiting"])  # fmt: skip
    assert channel["signing_secret"] is None
    policy = team.owner.post(
        f"{org}/approval-policies", json={"resource_type": "listing", "action": "publish"}
    )
    assert policy.status_code == 201, policy.json
    # When an operator asks to publish a listing
    asked = team.operator.post(f"{org}/listings/{kit['listing_id']}/publish")
    assert asked.status_code == 202 and asked.json["kind"] == "approval", asked.json
    approval_id = asked.json["approval"]["id"]
    # Then the approvers' address receives one email about it, with a link to it
    [mail] = eventually(lambda: smtp.to(approvers), 30, "the approval email")
    assert mail["From"] == "hub@example.test"
    assert mail[
        "Subject"
    ] == "[Fusion Stage Hub] Approval waiting for a decision: publish of listing " + str(
        kit["listing_id"]
    )
    text = mail.get_payload(decode=True).decode()
    assert f"approval_id: {approval_id}" in text
    assert f"{PUBLIC_URL}{org}/approvals/{approval_id}" in text
    # And the delivery log says it was handed over, at the first attempt
    done = eventually(lambda: _settled(team, channel["id"]), 20, "the delivery settled")
    assert (done["event"], done["status"], done["attempts"], done["response_code"]) == (
        "approval.waiting", "delivered", 1, 250,
    )  # fmt: skip


def test_a_signed_webhook_is_retried_with_backoff_until_it_is_taken(
    client: FlaskClient, admin_engine: Engine, receiver: HttpReceiver
) -> None:
    team = make_team(client, "Hooks")
    org = f"/orgs/{team.org_id}"
    kit = make_kit(admin_engine, team.org_id, None)
    path = f"/hooks/{uuid.uuid4().hex}"
    # Given a webhook channel for stock that hits 0, whose receiver first answers 500
    receiver.script[path] = [500]
    channel = _channel(team, name="ERP", kind="webhook", target=receiver.url + path,
                       events=["stock.out"])  # fmt: skip
    secret = str(channel["signing_secret"])
    assert secret.startswith("whsec_")
    receiver.secrets[path] = secret
    variant = f"{org}/variants/{kit['variant_id']}"
    assert team.operator.call("PATCH", variant, json={"available_quantity": 3}).status_code == 200
    # When the last 3 are taken off through the API
    taken = team.operator.post(f"{variant}/stock-adjustments", json={"delta": -3, "reason": "sold"})
    assert taken.status_code == 201, taken.json
    # Then the receiver is called twice: a 500, then, after the backoff, a 200
    calls = eventually(lambda: len(receiver.at(path)) >= 2 and receiver.at(path), 30, "two calls")
    first, second = calls[:2]
    assert [first.status, second.status] == [500, 200]
    # each call signed (checked by the receiver from the spec), with the same webhook-id
    assert first.signed and second.signed
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    body = second.json()
    assert body["type"] == "stock.out"
    assert body["data"]["sku"] == f"SKU-{kit['tag']}"
    assert body["data"]["channels"] == [{
        "listing_id": str(kit["listing_id"]), "store_id": str(kit["store_id"]),
        "store_name": "S", "platform": "shopify",
    }]  # fmt: skip
    assert body["data"]["link"] == f"{PUBLIC_URL}{variant}/stock"
    # And the delivery log shows both attempts, the second no earlier than the backoff said
    done = eventually(lambda: _settled(team, channel["id"]), 20, "the delivery settled")
    assert (done["status"], done["attempts"], done["response_code"]) == ("delivered", 2, 200)
    log = done["attempt_log"]
    assert [a["response_code"] for a in log] == [500, 200]
    assert log[0]["error"] == "the webhook receiver answered 500"
    retry_at = datetime.fromisoformat(log[0]["retry_at"])
    tried_at = datetime.fromisoformat(log[0]["at"])
    assert 0.9 <= (retry_at - tried_at).total_seconds() <= 1.2  # base 1 s, first retry
    assert second.at >= retry_at.timestamp() - 0.05
    assert log[1]["retry_at"] is None and done["error"] is None


def test_a_channel_buffer_that_shows_zero_is_announced_before_the_hub_runs_out(
    client: FlaskClient, admin_engine: Engine, receiver: HttpReceiver
) -> None:
    team = make_team(client, "Buffered")
    org = f"/orgs/{team.org_id}"
    kit = make_kit(admin_engine, team.org_id, None)
    channel, path = _hook(team, receiver, ["stock.out"])
    # Given a listing that holds back 2 units, and 5 in stock (the channel shows 3)
    listing = f"{org}/listings/{kit['listing_id']}"
    ruled = team.operator.call("PATCH", listing, json={"stock_rules": {"buffer": 2}})
    assert ruled.status_code == 200, ruled.json
    variant = f"{org}/variants/{kit['variant_id']}"
    assert team.operator.call("PATCH", variant, json={"available_quantity": 5}).status_code == 200
    # When 3 are taken: the hub holds 2, the channel shows 0
    taken = team.operator.post(f"{variant}/stock-adjustments", json={"delta": -3, "reason": "sold"})
    assert taken.status_code == 201, taken.json
    # Then the channel is announced as out of stock, with the hub's figure beside it
    [call] = eventually(lambda: receiver.at(path), 30, "the stock.out call")
    assert call.signed
    body = call.json()
    assert (body["type"], body["data"]["available_quantity"]) == ("stock.out", 2)
    assert [c["listing_id"] for c in body["data"]["channels"]] == [str(kit["listing_id"])]
    # And a further fall, with the channel already at 0, announces nothing more
    again = team.operator.post(f"{variant}/stock-adjustments", json={"delta": -1, "reason": "sold"})
    assert again.status_code == 201, again.json
    # (the hub's own 0 comes next: nothing new for the channel, which showed 0 already)
    last = team.operator.post(f"{variant}/stock-adjustments", json={"delta": -1, "reason": "sold"})
    assert last.status_code == 201, last.json
    time.sleep(2)  # deliveries of these changes would have been queued in their transactions
    assert len(_deliveries(team, channel_id=str(channel["id"]))) == 1


def test_beat_runs_the_periodic_checks_and_announces_what_it_finds(
    client: FlaskClient, admin_engine: Engine, receiver: HttpReceiver
) -> None:
    team = make_team(client, "Watched")
    # Given an org with a failed job and an approval expiring within the hour (the kit's)
    kit = make_kit(admin_engine, team.org_id, None)
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET finished_at = now() WHERE id = :id"),
                     {"id": kit["failed_job_id"]})  # fmt: skip
    # When it routes failing jobs (threshold 1) and expiring approvals to a webhook
    channel, path = _hook(team, receiver, ["jobs.failing", "approval.expiring"],
                          thresholds={"failed_jobs_per_hour": 1})  # fmt: skip
    # Then beat's own schedule (nothing here calls the checks) finds both and they arrive
    calls = eventually(lambda: len(receiver.at(path)) >= 2 and receiver.at(path), 30, "two calls")
    assert all(c.signed for c in calls)
    by_type = {c.json()["type"]: c.json()["data"] for c in calls}
    assert by_type["jobs.failing"] == {
        "failed": 1, "minutes": 60, "threshold": 1,
        "link": f"{PUBLIC_URL}/orgs/{team.org_id}/jobs?status=failed",
    }  # fmt: skip
    assert by_type["approval.expiring"]["approval_id"] == str(kit["approval_id"])
    # And each is announced once, however many times beat has run the checks since
    time.sleep(3)
    assert sorted(d["event"] for d in _deliveries(team, channel_id=str(channel["id"]))) == [
        "approval.expiring", "jobs.failing",
    ]  # fmt: skip


def test_a_slack_channel_gets_the_test_message(client: FlaskClient, receiver: HttpReceiver) -> None:
    team = make_team(client, "Chatty")
    path = f"/services/T000/B000/{uuid.uuid4().hex}"
    # Given a Slack-compatible channel (its URL is its credential: shown by host only)
    channel = _channel(team, name="#ops", kind="slack", target=receiver.url + path,
                       events=["jobs.failing"])  # fmt: skip
    assert channel["target"] == f"{receiver.url}/…"
    shown = team.viewer.get(f"/orgs/{team.org_id}/notification-channels/{channel['id']}")
    assert path not in shown.get_data(as_text=True)
    # When the owner sends a test
    sent = team.owner.post(f"/orgs/{team.org_id}/notification-channels/{channel['id']}/test")
    assert sent.status_code == 202, sent.json
    # Then the webhook receives Slack's message shape
    [call] = eventually(lambda: receiver.at(path), 30, "the slack message")
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {"text": "*Test notification from Fusion Stage Hub*"}
    done = eventually(lambda: _settled(team, channel["id"]), 20, "the delivery settled")
    assert (done["event"], done["status"], done["response_code"]) == ("test", "delivered", 200)


def test_a_receiver_that_refuses_is_not_asked_again(
    client: FlaskClient, receiver: HttpReceiver
) -> None:
    team = make_team(client, "Refused")
    path = f"/gone/{uuid.uuid4().hex}"
    receiver.script[path] = [410, 200]
    channel = _channel(team, name="old", kind="webhook", target=receiver.url + path,
                       events=["stock.out"])  # fmt: skip
    team.owner.post(f"/orgs/{team.org_id}/notification-channels/{channel['id']}/test")
    done = eventually(lambda: _settled(team, channel["id"]), 30, "the delivery settled")
    assert (done["status"], done["attempts"], done["response_code"]) == ("failed", 1, 410)
    assert done["error"] == "the webhook receiver answered 410"
    assert len(receiver.at(path)) == 1


CANARY = "shpat_CANARY0123456789abcdef"
HOOK_CANARY = "whsec_CANARYHOOK987654321"


def test_notifications_never_carry_a_secret(
    client: FlaskClient, admin_engine: Engine, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    team = make_team(client, "Canary")
    org = f"/orgs/{team.org_id}"
    # Given a store connected with canary credentials and webhook secret, one SKU listed on it
    store = team.owner.post(
        f"{org}/stores",
        json={
            "platform": "shopify",
            "name": "Canary shop",
            "external_id": "canary.myshopify.com",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"access_token": CANARY},
            "webhook_secret": HOOK_CANARY,
        },
    )
    assert store.status_code == 201, store.json
    product = team.owner.post(f"{org}/products", json={"title": "Tee"}).json
    variant = team.owner.post(
        f"{org}/products/{product['id']}/variants",
        json={"sku": "CAN-1", "price": "5.00", "available_quantity": 2},
    ).json
    listed = team.owner.post(
        f"{org}/listings", json={"product_id": product["id"], "store_id": store.json["id"]}
    )
    assert listed.status_code == 201, listed.json
    # and a webhook and an email channel for stock that hits 0
    path = f"/canary/{uuid.uuid4().hex}"
    hook = _channel(
        team, name="ERP", kind="webhook", target=receiver.url + path, events=["stock.out"]
    )
    address = f"canary-{uuid.uuid4().hex[:6]}@example.test"
    mail = _channel(team, name="Ops", kind="email", target=address, events=["stock.out"])
    receiver.secrets[path] = str(hook["signing_secret"])
    # When the stock hits 0 through the API, and a test is sent
    sold = team.operator.post(
        f"{org}/variants/{variant['id']}/stock-adjustments", json={"delta": -2, "reason": "sold"}
    )
    assert sold.status_code == 201, sold.json
    team.owner.post(f"{org}/notification-channels/{hook['id']}/test")
    calls = eventually(lambda: len(receiver.at(path)) == 2 and receiver.at(path), 30, "calls")
    # (two jobs, delivered in whichever order they ran)
    [call] = [c for c in calls if c.json()["type"] == "stock.out"]
    [email] = eventually(lambda: smtp.to(address), 30, "the email")
    eventually(lambda: _settled(team, mail["id"]), 20, "the email delivery settled")
    # Then the notification names the store and the SKU
    assert call.signed and call.json()["data"]["channels"][0]["store_name"] == "Canary shop"
    assert "CAN-1" in email["Subject"]
    # and no secret is in what was sent, stored or shown
    with admin_engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT payload::text, attempt_log::text, coalesce(error, '') "
                "FROM notification_deliveries WHERE org_id = :org"
            ),
            {"org": team.org_id},
        ).all()
        job_payloads = (
            conn.execute(
                text(
                    "SELECT payload::text FROM jobs "
                    "WHERE org_id = :org AND job_type = 'deliver_notification'"
                ),
                {"org": team.org_id},
            )
            .scalars()
            .all()
        )
    assert len(stored) == 3 and len(job_payloads) == 3
    sinks = [
        *(f"{r.headers} {r.body.decode()}" for r in receiver.at(path)),
        email.as_string(),
        *(" ".join(row) for row in stored),
        *job_payloads,
        team.owner.get(f"{org}/notification-deliveries").get_data(as_text=True),
        team.owner.get(f"{org}/notification-channels").get_data(as_text=True),
    ]
    for secret in (CANARY, HOOK_CANARY, str(hook["signing_secret"])):
        assert not [s for s in sinks if secret in s], secret
