"""Secrets encrypted at rest with Fernet, newest key first (docs/data-model.md).

Fernet has no associated data, so a ciphertext pasted from one store's row into another's
would decrypt fine. To refuse that, the plaintext is ``{"org": .., "store": .., "v": 1,
"data": {...}}`` and decryption checks ``org``/``store`` against the row it was read from; a
person's secret (their TOTP key) is bound the same way to ``{"user": .., "purpose": ..}``.
Errors never include the plaintext or the token.

``FUSION_ENCRYPTION_KEYS`` lists keys newest first: everything is encrypted under the first,
any of them decrypts. :func:`key_index` says which key a token is under, so ``fusion keys
rotate`` can re-encrypt what is still under an older one and report when none is left.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fusion.config import Settings
from fusion.errors import ConfigError, PermanentError

FORMAT_VERSION = 1


class Secret(str):
    """A credential value: prints as ``***`` in reprs, logs and tracebacks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"

    def __format__(self, spec: str) -> str:
        return "***"


class CredentialsUnreadable(PermanentError):
    """The stored credentials cannot be decrypted with the configured keys, or belong to
    another store: reconnect the store."""


def _fernet(settings: Settings) -> MultiFernet:
    if not settings.encryption_keys:
        raise ConfigError("FUSION_ENCRYPTION_KEYS: no encryption key is configured")
    return MultiFernet([Fernet(key.encode()) for key in settings.encryption_keys])


def encrypt_credentials(
    settings: Settings, org_id: uuid.UUID, store_id: uuid.UUID, mapping: Mapping[str, str]
) -> bytes:
    """A Fernet token (under the newest key) of ``mapping`` bound to this org and store.

    Raises ValueError if a key or value is not a string, ConfigError if no key is configured.
    """
    data: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError("credentials must map strings to strings")
        data[key] = str.__str__(value)  # a Secret is stored as its plain value
    plaintext = {"v": FORMAT_VERSION, "org": str(org_id), "store": str(store_id), "data": data}
    return _fernet(settings).encrypt(json.dumps(plaintext, sort_keys=True).encode())


def decrypt_credentials(
    settings: Settings, org_id: uuid.UUID, store_id: uuid.UUID, token: bytes
) -> dict[str, Secret]:
    """The credentials in ``token``, each value a :class:`Secret` (prints as ``***``).

    Raises CredentialsUnreadable (a PermanentError: retrying will not help) if no configured
    key opens the token, or if it was encrypted for a different org or store.
    """
    try:
        raw = _fernet(settings).decrypt(bytes(token))
    except InvalidToken:
        raise CredentialsUnreadable() from None
    try:
        plaintext = json.loads(raw)
        bound = (plaintext["org"], plaintext["store"])
        data = plaintext["data"]
    except (ValueError, KeyError, TypeError):
        raise CredentialsUnreadable() from None
    if bound != (str(org_id), str(store_id)):
        raise CredentialsUnreadable(
            "the stored credentials were encrypted for a different store: reconnect the store"
        )
    return {str(k): Secret(v) for k, v in data.items()}


def rotate(settings: Settings, token: bytes) -> bytes:
    """``token`` re-encrypted under the newest key (its timestamp kept), so the old key can be
    retired. Idempotent. Raises CredentialsUnreadable if no configured key opens it."""
    try:
        return _fernet(settings).rotate(bytes(token))
    except InvalidToken:
        raise CredentialsUnreadable() from None


def key_index(settings: Settings, token: bytes) -> int | None:
    """The position in ``settings.encryption_keys`` of the key ``token`` was made with (0 is
    the newest), or None if no configured key opens it. Only the HMAC is checked: nothing is
    decrypted."""
    if not settings.encryption_keys:
        raise ConfigError("FUSION_ENCRYPTION_KEYS: no encryption key is configured")
    for index, key in enumerate(settings.encryption_keys):
        try:
            Fernet(key.encode()).extract_timestamp(bytes(token))
        except InvalidToken:
            continue
        return index
    return None


def encrypt_secret(settings: Settings, org_id: uuid.UUID, store_id: uuid.UUID, value: str) -> bytes:
    """One secret (e.g. a webhook signing secret) encrypted and bound like credentials."""
    return encrypt_credentials(settings, org_id, store_id, {"secret": value})


def decrypt_secret(
    settings: Settings, org_id: uuid.UUID, store_id: uuid.UUID, token: bytes
) -> Secret:
    """The secret :func:`encrypt_secret` stored; raises CredentialsUnreadable like
    :func:`decrypt_credentials`."""
    data = decrypt_credentials(settings, org_id, store_id, token)
    if "secret" not in data:
        raise CredentialsUnreadable()
    return data["secret"]


def encrypt_user_secret(settings: Settings, user_id: uuid.UUID, purpose: str, value: str) -> bytes:
    """A Fernet token (under the newest key) of one secret of a person's (``purpose``, e.g.
    ``"totp"``), bound to them: it does not decrypt as another person's or another purpose's."""
    plaintext = {"v": FORMAT_VERSION, "user": str(user_id), "purpose": purpose, "secret": value}
    return _fernet(settings).encrypt(json.dumps(plaintext, sort_keys=True).encode())


def decrypt_user_secret(
    settings: Settings, user_id: uuid.UUID, purpose: str, token: bytes
) -> Secret:
    """The secret :func:`encrypt_user_secret` stored. Raises CredentialsUnreadable if no
    configured key opens it or it was made for another person or purpose."""
    try:
        plaintext = json.loads(_fernet(settings).decrypt(bytes(token)))
        bound = (plaintext["user"], plaintext["purpose"])
        value = plaintext["secret"]
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise CredentialsUnreadable("the stored secret cannot be read") from None
    if bound != (str(user_id), purpose) or not isinstance(value, str):
        raise CredentialsUnreadable("the stored secret belongs to someone else")
    return Secret(value)


def encrypt_channel_secret(
    settings: Settings, org_id: uuid.UUID, channel_id: uuid.UUID, value: str
) -> bytes:
    """A notification channel's signing secret, encrypted under the newest key and bound to
    its org and channel (it does not decrypt as another channel's)."""
    plaintext = {
        "v": FORMAT_VERSION,
        "org": str(org_id),
        "channel": str(channel_id),
        "secret": value,
    }
    return _fernet(settings).encrypt(json.dumps(plaintext, sort_keys=True).encode())


def decrypt_channel_secret(
    settings: Settings, org_id: uuid.UUID, channel_id: uuid.UUID, token: bytes
) -> Secret:
    """The secret :func:`encrypt_channel_secret` stored. Raises CredentialsUnreadable if no
    configured key opens it or it was made for another org or channel."""
    try:
        plaintext = json.loads(_fernet(settings).decrypt(bytes(token)))
        bound = (plaintext["org"], plaintext["channel"])
        value = plaintext["secret"]
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise CredentialsUnreadable("the channel's signing secret cannot be read") from None
    if bound != (str(org_id), str(channel_id)) or not isinstance(value, str):
        raise CredentialsUnreadable("the signing secret belongs to another channel")
    return Secret(value)
