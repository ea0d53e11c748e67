"""Store credentials at rest: Fernet, bound to org and store, rotatable."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from fusion.config import Settings
from fusion.errors import PermanentError
from fusion.security.crypto import (
    CredentialsUnreadable,
    decrypt_credentials,
    decrypt_user_secret,
    encrypt_credentials,
    encrypt_user_secret,
    key_index,
    rotate,
)

ORG, STORE, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
CANARY = "shpat_canary0123456789abcdef"


def _settings(*keys: str) -> Settings:
    return Settings(encryption_keys=tuple(keys))


def test_round_trip_gives_secrets_that_never_print() -> None:
    s = _settings(Fernet.generate_key().decode())
    token = encrypt_credentials(s, ORG, STORE, {"access_token": CANARY})
    assert CANARY.encode() not in token
    creds = decrypt_credentials(s, ORG, STORE, token)
    assert creds == {"access_token": CANARY}
    assert CANARY not in repr(creds) and CANARY not in f"{creds['access_token']}"


def test_ciphertext_of_another_store_is_refused_without_echoing_it() -> None:
    s = _settings(Fernet.generate_key().decode())
    token = encrypt_credentials(s, ORG, STORE, {"access_token": CANARY})
    with pytest.raises(CredentialsUnreadable, match="different store") as caught:
        decrypt_credentials(s, ORG, OTHER, token)
    assert isinstance(caught.value, PermanentError)
    assert CANARY not in str(caught.value)


def test_rotation_moves_to_the_new_key_and_the_old_key_is_retired() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = encrypt_credentials(_settings(old), ORG, STORE, {"k": "v1"})
    both = _settings(new, old)
    rotated = rotate(both, token)
    assert decrypt_credentials(_settings(new), ORG, STORE, rotated) == {"k": "v1"}
    with pytest.raises(CredentialsUnreadable):
        decrypt_credentials(_settings(new), ORG, STORE, token)
    # new encryptions use the newest key
    fresh = encrypt_credentials(both, ORG, STORE, {"k": "v2"})
    assert decrypt_credentials(replace(both, encryption_keys=(new,)), ORG, STORE, fresh)


def test_garbage_and_non_string_values_are_refused() -> None:
    s = _settings(Fernet.generate_key().decode())
    with pytest.raises(CredentialsUnreadable):
        decrypt_credentials(s, ORG, STORE, b"not a token")
    with pytest.raises(ValueError):
        encrypt_credentials(s, ORG, STORE, {"k": 1})  # type: ignore[dict-item]


def test_key_index_names_the_key_a_token_is_under() -> None:
    old, new, other = (Fernet.generate_key().decode() for _ in range(3))
    token = encrypt_credentials(_settings(old), ORG, STORE, {"k": "v"})
    both = _settings(new, old)
    assert key_index(both, token) == 1
    assert key_index(both, rotate(both, token)) == 0
    assert key_index(_settings(other), token) is None


def test_a_persons_secret_is_bound_to_them_and_its_purpose() -> None:
    s = _settings(Fernet.generate_key().decode())
    person, someone_else = uuid.uuid4(), uuid.uuid4()
    token = encrypt_user_secret(s, person, "totp", "JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in token
    secret = decrypt_user_secret(s, person, "totp", token)
    assert secret == "JBSWY3DPEHPK3PXP" and "JBSWY3DPEHPK3PXP" not in repr(secret)
    with pytest.raises(CredentialsUnreadable):
        decrypt_user_secret(s, someone_else, "totp", token)
    with pytest.raises(CredentialsUnreadable):
        decrypt_user_secret(s, person, "other", token)
    with pytest.raises(CredentialsUnreadable):
        decrypt_user_secret(_settings(Fernet.generate_key().decode()), person, "totp", token)
