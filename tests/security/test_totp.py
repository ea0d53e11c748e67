"""TOTP against the standards themselves: RFC 6238 Appendix B and RFC 4226 Appendix D."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from urllib.parse import parse_qs, urlsplit

import pytest

from fusion.security import totp

# RFC 6238 Appendix B: the seeds are ASCII "1234567890" repeated to the hash's length.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238_VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
# RFC 4226 Appendix D: HOTP of the SHA-1 seed for counters 0..9.
RFC4226_CODES = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), RFC6238_VECTORS)
def test_rfc6238_appendix_b_vectors(at: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        got = totp.totp(SEEDS[algorithm], at, digits=8, algorithm=algorithm)
        assert got == expected, algorithm


def test_rfc4226_appendix_d_hotp_values() -> None:
    assert [totp.hotp(SEEDS["SHA1"], c) for c in range(10)] == RFC4226_CODES


def _independent_code(secret: str, at: float) -> str:
    """The code computed straight from RFC 6238 with hmac, sharing nothing with the module."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset : offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def test_a_new_secret_gives_the_codes_the_standard_computes() -> None:
    secret = totp.new_secret()
    assert len(totp.secret_bytes(secret)) == 20
    key = totp.secret_bytes(secret)
    for at in (0, 59, 1_700_000_000, 1_700_000_029.9):
        assert totp.totp(key, at) == _independent_code(secret, at)


def test_matching_accepts_one_step_either_side_and_refuses_used_steps() -> None:
    key = SEEDS["SHA1"]
    at = 1_700_000_000.0
    step = at // 30
    assert totp.matching_step(key, totp.totp(key, at), at) == step
    assert totp.matching_step(key, totp.totp(key, at - 30), at) == step - 1
    assert totp.matching_step(key, totp.totp(key, at + 30), at) == step + 1
    assert totp.matching_step(key, totp.totp(key, at - 60), at) is None
    # A step already used, or one before it, is refused
    assert totp.matching_step(key, totp.totp(key, at), at, after_step=int(step)) is None
    assert totp.matching_step(key, totp.totp(key, at - 30), at, after_step=int(step)) is None
    assert totp.matching_step(key, totp.totp(key, at + 30), at, after_step=int(step)) == step + 1
    for junk in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert totp.matching_step(key, junk, at) is None


def test_the_provisioning_uri_names_the_secret_issuer_and_account() -> None:
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXP", account="ana@example.test", issuer="Fusion")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "otpauth",
        "totp",
        "/Fusion:ana@example.test",
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "secret": "JBSWY3DPEHPK3PXP",
        "issuer": "Fusion",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }
