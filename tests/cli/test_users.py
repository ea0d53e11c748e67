"""``fusion users create``, ``fusion orgs create``, ``fusion users set-password``,
``fusion users reset-mfa`` and ``fusion audit verify`` against the real database, and a
tampered audit entry caught at its exact position."""

from __future__ import annotations

import uuid
from typing import Any

from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from fusion.cli.main import cli
from tests.support.api import PASSWORD
from tests.support.totp import code_at


def test_first_owner_from_the_shell_then_audit_verify(
    hub_env: dict[str, str], client: FlaskClient, admin_engine: Engine
) -> None:
    runner = CliRunner()
    email = f"first-{uuid.uuid4().hex[:6]}@example.test"
    made = runner.invoke(
        cli, ["users", "create", "--email", email, "--password", PASSWORD], env=hub_env
    )
    assert made.exit_code == 0, made.output
    again = runner.invoke(
        cli, ["users", "create", "--email", email, "--password", PASSWORD], env=hub_env
    )
    assert again.exit_code == 1 and "already exists" in again.output
    org = runner.invoke(
        cli, ["orgs", "create", "--name", "Shell Co", "--owner-email", email], env=hub_env
    )
    assert org.exit_code == 0, org.output
    org_id = org.output.split()[2]
    # The owner can log in and sees the org
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    token = login.json["access_token"]
    me = client.get("/me", headers={"Authorization": f"Bearer {token}"}).json
    assert [(o["org_id"], o["role"]) for o in me["orgs"]] == [(org_id, "owner")]
    # Some audited writes, then the chain verifies
    for title in ("a", "b", "c"):
        client.post(
            f"/orgs/{org_id}/products",
            json={"title": title},
            headers={"Authorization": f"Bearer {token}"},
        )
    ok = runner.invoke(cli, ["audit", "verify", "--org", org_id], env=hub_env)
    assert ok.exit_code == 0 and "intact" in ok.output
    # When one entry is changed out of band (superuser, triggers off)
    with admin_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                'UPDATE audit_logs SET after = \'{"title": "forged"}\' '
                "WHERE org_id = :org AND seq = 3"
            ),
            {"org": org_id},
        )
    # Then verify names exactly that entry
    bad = runner.invoke(cli, ["audit", "verify", "--org", org_id], env=hub_env)
    assert bad.exit_code == 1 and "seq=3" in bad.output


def test_an_operator_resets_a_forgotten_password_from_the_shell(
    hub_env: dict[str, str], client: FlaskClient
) -> None:
    runner = CliRunner()
    email = f"forgetful-{uuid.uuid4().hex[:6]}@example.test"
    made = runner.invoke(
        cli, ["users", "create", "--email", email, "--password", PASSWORD], env=hub_env
    )
    assert made.exit_code == 0, made.output
    session = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    new = "reset by the operator 2026"

    def set_password(address: str, password: str) -> Any:
        args = ["users", "set-password", "--email", address, "--password", password]
        return runner.invoke(cli, args, env=hub_env)

    weak = set_password(email, "short")
    assert weak.exit_code == 1 and "new_password" in weak.output
    unknown = set_password("nobody@example.test", new)
    assert unknown.exit_code == 1 and "no account" in unknown.output
    assert client.get("/me", headers=headers).status_code == 200  # nothing changed yet
    done = set_password(email.upper(), new)
    assert done.exit_code == 0, done.output
    # The old session is over; the old password no longer works, the new one does
    assert client.get("/me", headers=headers).status_code == 401
    refresh = client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refresh.status_code == 401
    old = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert client.post("/auth/login", json={"email": email, "password": new}).status_code == 200


def test_an_operator_removes_a_lost_second_factor_from_the_shell(
    hub_env: dict[str, str], client: FlaskClient
) -> None:
    # Given a person with TOTP on, who lost their phone and their recovery codes
    runner = CliRunner()
    email = f"lost-phone-{uuid.uuid4().hex[:6]}@example.test"
    made = runner.invoke(
        cli, ["users", "create", "--email", email, "--password", PASSWORD], env=hub_env
    )
    assert made.exit_code == 0, made.output
    login = {"email": email, "password": PASSWORD}
    headers = {
        "Authorization": f"Bearer {client.post('/auth/login', json=login).json['access_token']}"
    }
    secret = client.post("/me/mfa/totp", headers=headers).json["secret"]
    confirm = client.post("/me/mfa/totp/confirm", json={"code": code_at(secret)}, headers=headers)
    assert confirm.status_code == 200
    assert client.post("/auth/login", json=login).json["mfa_required"] is True
    # When the operator resets it
    unknown = runner.invoke(
        cli, ["users", "reset-mfa", "--email", "nobody@example.test"], env=hub_env
    )
    assert unknown.exit_code == 1 and "no account" in unknown.output
    done = runner.invoke(cli, ["users", "reset-mfa", "--email", email], env=hub_env)
    assert done.exit_code == 0 and "it was on" in done.output, done.output
    # Then the old session is over and the password alone logs in again
    assert client.get("/me", headers=headers).status_code == 401
    again = client.post("/auth/login", json=login)
    assert again.status_code == 200 and again.json["access_token"]
