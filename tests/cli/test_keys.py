"""``fusion keys status`` and ``fusion keys rotate`` across orgs: every stored secret (store
credentials, webhook secrets, TOTP secrets) moves from key A to key B in batches, an
interrupted run resumes, and afterwards the hub works with key B alone."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from click.testing import CliRunner
from cryptography.fernet import Fernet, InvalidToken
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from api.app import create_app
from fusion.cli.main import cli
from fusion.config import Settings
from fusion.jobs import dispatch
from fusion.models import ENCRYPTED_COLUMNS
from fusion.security.crypto import decrypt_credentials, decrypt_secret, decrypt_user_secret
from tests.support.api import PASSWORD
from tests.support.totp import code_at

CREDENTIALS = {"client_id": "c", "client_secret": "s", "refresh_token": "Atzr|r"}


def _owner_with_store(client: FlaskClient, name: str) -> dict[str, Any]:
    """A person owning an org with one connected store (credentials and a webhook secret)."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.test"
    signed = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert signed.status_code == 201, signed.json
    headers = {"Authorization": f"Bearer {signed.json['access_token']}"}
    org = client.post("/orgs", json={"name": name}, headers=headers)
    assert org.status_code == 201, org.json
    secret = f"whsec-{name}"
    store = client.post(
        f"/orgs/{org.json['id']}/stores",
        json={
            "platform": "amazon_sc",
            "name": name,
            "external_id": f"A{uuid.uuid4().hex[:10].upper()}",
            "credentials": CREDENTIALS,
            "webhook_secret": secret,
        },
        headers=headers,
    )
    assert store.status_code == 201, store.json
    return {
        "email": email,
        "headers": headers,
        "user_id": uuid.UUID(signed.json["user_id"]),
        "org_id": uuid.UUID(org.json["id"]),
        "store_id": uuid.UUID(store.json["id"]),
        "webhook_secret": secret,
    }


def _tokens(admin_engine: Engine) -> dict[str, list[bytes]]:
    with admin_engine.connect() as conn:
        stores = conn.execute(
            text("SELECT credentials_encrypted, webhook_secret_encrypted FROM stores")
        ).all()
        totp = conn.execute(text("SELECT secret_encrypted FROM totp_factors")).scalars().all()
    return {
        "credentials": [bytes(r[0]) for r in stores],
        "webhook": [bytes(r[1]) for r in stores],
        "totp": [bytes(t) for t in totp],
    }


def _opens(key: str, token: bytes) -> bool:
    try:
        Fernet(key.encode()).decrypt(token)
    except InvalidToken:
        return False
    return True


def test_rotation_retires_the_old_key_across_orgs(
    hub_env: dict[str, str],
    client: FlaskClient,
    api_settings: Settings,
    admin_engine: Engine,
) -> None:
    # Given two orgs with a store each and a person with TOTP on, all written under key A
    key_a = api_settings.encryption_keys[0]
    key_b = Fernet.generate_key().decode()
    alpha, bravo = _owner_with_store(client, "Alpha"), _owner_with_store(client, "Bravo")
    enrolment = client.post("/me/mfa/totp", headers=alpha["headers"])
    totp_secret = enrolment.json["secret"]
    confirmed = client.post(
        "/me/mfa/totp/confirm", json={"code": code_at(totp_secret)}, headers=alpha["headers"]
    )
    assert confirmed.status_code == 200, confirmed.json
    before = _tokens(admin_engine)
    assert all(_opens(key_a, t) for ts in before.values() for t in ts)
    assert sum(len(ts) for ts in before.values()) == 5
    with admin_engine.connect() as conn:
        stamps = dict(conn.execute(text("SELECT id, updated_at FROM stores")).all())

    # When key B is put in front of A
    runner = CliRunner()
    both = {**hub_env, "FUSION_ENCRYPTION_KEYS": f"{key_b},{key_a}"}
    status = runner.invoke(cli, ["keys", "status"], env=both)
    # Then status counts what still needs A, per column, and exits 1
    assert status.exit_code == 1, status.output
    assert "stores.credentials_encrypted: rotated 0, newest key 0, older keys 2 (key #2: 2)" in (
        status.output
    )
    assert "totp_factors.secret_encrypted: rotated 0, newest key 0, older keys 1" in status.output
    assert "left under older keys: 5" in status.output

    # When a rotation is stopped after two secrets (batches of one)
    first = runner.invoke(cli, ["keys", "rotate", "--batch-size", "1", "--limit", "2"], env=both)
    assert first.exit_code == 1, first.output
    assert "left under older keys: 3" in first.output
    # Then running it again carries on from there and leaves nothing under A
    second = runner.invoke(cli, ["keys", "rotate", "--batch-size", "1"], env=both)
    assert second.exit_code == 0, second.output
    assert "left under older keys: 0" in second.output
    assert "the older keys can be removed" in second.output
    rotated = sum(
        int(line.split("rotated ")[1].split(",")[0])
        for out in (first.output, second.output)
        for line in out.splitlines()
        if "rotated " in line
    )
    assert rotated == 5
    # And a third run has nothing to do
    third = runner.invoke(cli, ["keys", "rotate"], env=both)
    assert third.exit_code == 0 and third.output.count("rotated 0,") == len(ENCRYPTED_COLUMNS), (
        third.output
    )

    # Then every secret opens with B alone, and no longer with A
    after = _tokens(admin_engine)
    assert all(_opens(key_b, t) and not _opens(key_a, t) for ts in after.values() for t in ts)
    only_b = dataclasses.replace(api_settings, encryption_keys=(key_b,))
    for owner in (alpha, bravo):
        with admin_engine.connect() as conn:
            creds, hook = conn.execute(
                text(
                    "SELECT credentials_encrypted, webhook_secret_encrypted FROM stores "
                    "WHERE id = :id"
                ),
                {"id": owner["store_id"]},
            ).one()
        assert decrypt_credentials(only_b, owner["org_id"], owner["store_id"], creds) == (
            CREDENTIALS
        )
        secret = decrypt_secret(only_b, owner["org_id"], owner["store_id"], hook)
        assert secret == owner["webhook_secret"]
    assert decrypt_user_secret(only_b, alpha["user_id"], "totp", after["totp"][0]) == totp_secret
    # A re-encryption is not a change to the store
    with admin_engine.connect() as conn:
        assert dict(conn.execute(text("SELECT id, updated_at FROM stores")).all()) == stamps
    # And with A removed, status is clean and the hub works: the person logs in with a code
    b_env = {**hub_env, "FUSION_ENCRYPTION_KEYS": key_b}
    clean = runner.invoke(cli, ["keys", "status"], env=b_env)
    assert clean.exit_code == 0 and "unreadable 0" in clean.output, clean.output
    assert "unreadable with every" not in clean.output
    previous = dispatch.installed()
    app_b = create_app(only_b)
    try:
        hub_b = app_b.test_client()
        login = {"email": alpha["email"], "password": PASSWORD}
        challenge = hub_b.post("/auth/login", json=login).json["challenge"]
        done = hub_b.post(
            "/auth/login/mfa",
            json={"challenge": challenge, "code": code_at(totp_secret, step_offset=1)},
        )
        assert done.status_code == 200, done.json
    finally:
        dispatch.install(previous)
        app_b.extensions["fusion"].database.dispose()


def test_keys_commands_need_the_owners_url(hub_env: dict[str, str]) -> None:
    env = {k: v for k, v in hub_env.items() if k != "FUSION_DATABASE_URL"}
    env["FUSION_DATABASE_URL"] = ""
    result = CliRunner().invoke(cli, ["keys", "status"], env=env)
    assert result.exit_code == 2 and "FUSION_DATABASE_URL" in result.output
