"""Multi-factor sign-in for people: a TOTP factor (RFC 6238), one-time recovery codes, and the
login challenge that stands between a right password and the tokens.

- Enrolment is two steps: :func:`start_totp` makes a pending factor (the secret is shown once,
  stored encrypted and bound to the person); :func:`confirm_totp` turns it on with a first good
  code and hands out :data:`RECOVERY_CODES` recovery codes, stored only as argon2id hashes.
- Once a factor is on, a right password gives a :class:`MfaChallenge` instead of tokens;
  :func:`redeem_challenge` exchanges it, once, with a code or an unused recovery code.
- A code's time step is recorded when accepted; that step and every earlier one are refused
  afterwards, so a code never works twice. A challenge takes :data:`CHALLENGE_ATTEMPTS` wrong
  codes, a factor :data:`FAILURES_BEFORE_LOCK` in a row (over any challenges) before it is
  locked for :data:`LOCK_S` seconds.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from fusion.auth.models import LoginChallenge, RecoveryCode, RefreshToken, TotpFactor, User
from fusion.auth.passwords import verify_password
from fusion.auth.secrets import digest, new_opaque_token
from fusion.config import Settings
from fusion.errors import Conflict, ValidationFailed
from fusion.security import totp
from fusion.security.crypto import Secret, decrypt_user_secret, encrypt_user_secret

ISSUER = "Fusion Stage Hub"
TOTP_PURPOSE = "totp"
RECOVERY_CODES = 10
CHALLENGE_TTL_S = 300
CHALLENGE_ATTEMPTS = 5
FAILURES_BEFORE_LOCK = 10
LOCK_S = 15 * 60
# Recovery codes carry 50 random bits each, so OWASP's minimum argon2id profile (19 MiB, t=2)
# is plenty; a login with one checks up to ten hashes, which the password profile would make
# slow.
_recovery_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


@dataclass(frozen=True)
class Enrolment:
    """A pending TOTP factor: the secret (base32) and the URI to show as a QR code."""

    secret: Secret
    otpauth_uri: str


@dataclass(frozen=True)
class MfaChallenge:
    """What a right password gets once a second factor is on: exchange it, with a code, at
    ``POST /auth/login/mfa`` before ``expires_at``."""

    challenge: str
    expires_at: datetime


@dataclass(frozen=True)
class MfaStatus:
    totp: str  # "off", "pending" or "on"
    recovery_codes_left: int


def _factor(session: Session, user_id: uuid.UUID, *, lock: bool = False) -> TotpFactor | None:
    query = select(TotpFactor).where(TotpFactor.user_id == user_id)
    return session.scalar(query.with_for_update() if lock else query)


def has_mfa(session: Session, user_id: uuid.UUID) -> bool:
    """True once the person has a confirmed second factor."""
    return (
        session.scalar(
            select(TotpFactor.id).where(
                TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
            )
        )
        is not None
    )


def status(session: Session, user_id: uuid.UUID) -> MfaStatus:
    """Whether the person's TOTP factor is off, pending or on, and how many recovery codes
    they have left."""
    factor = _factor(session, user_id)
    state = "off" if factor is None else "on" if factor.confirmed_at else "pending"
    left = session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return MfaStatus(state, int(left or 0) if state == "on" else 0)


def start_totp(session: Session, settings: Settings, user: User) -> Enrolment:
    """A new pending TOTP factor for ``user`` (replacing a pending one). Raises Conflict if a
    confirmed factor exists: turn it off first."""
    factor = _factor(session, user.id, lock=True)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict("Multi-factor sign-in is already on: turn it off first to enrol again.")
    secret = totp.new_secret()
    token = encrypt_user_secret(settings, user.id, TOTP_PURPOSE, secret)
    if factor is None:
        session.add(TotpFactor(user_id=user.id, secret_encrypted=token))
    else:
        factor.secret_encrypted = token
        factor.last_used_step = None
    session.flush()
    uri = totp.provisioning_uri(secret, account=user.email, issuer=ISSUER)
    return Enrolment(Secret(secret), uri)


def _accept_code(settings: Settings, factor: TotpFactor, code: str, now: float) -> bool:
    """True if ``code`` is good for ``factor`` now and its step is later than any used; the
    step is then recorded (the caller holds the factor's row lock)."""
    secret = decrypt_user_secret(settings, factor.user_id, TOTP_PURPOSE, factor.secret_encrypted)
    step = totp.matching_step(
        totp.secret_bytes(secret), code, now, after_step=factor.last_used_step
    )
    if step is None:
        return False
    factor.last_used_step = step
    return True


def _new_recovery_codes(session: Session, user_id: uuid.UUID) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user_id, code_hash=_recovery_hasher.hash(raw)))
    session.flush()
    return codes


def confirm_totp(
    session: Session, settings: Settings, user: User, *, code: str, keep_session: uuid.UUID
) -> list[str]:
    """Turn the pending factor on with a first good ``code``; returns the recovery codes (in
    plaintext here and nowhere else) and ends every other login session of the person (they
    were opened with the password alone), keeping ``keep_session``. Raises Conflict if there
    is no pending factor and ValidationFailed naming ``code`` when it does not match."""
    factor = _factor(session, user.id, lock=True)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict("There is no pending enrolment: start one with POST /me/mfa/totp.")
    if not _accept_code(settings, factor, code, time.time()):
        raise ValidationFailed(fields={"code": ["Does not match."]})
    factor.confirmed_at = datetime.now(UTC)
    session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == user.id,
            RefreshToken.family_id != keep_session,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    return _new_recovery_codes(session, user.id)


def regenerate_recovery_codes(
    session: Session, settings: Settings, user: User, *, code: str
) -> list[str]:
    """A fresh set of recovery codes (the old ones stop working), given a current code.
    Raises Conflict if the factor is not on and ValidationFailed naming ``code``."""
    factor = _factor(session, user.id, lock=True)
    if factor is None or factor.confirmed_at is None:
        raise Conflict("Multi-factor sign-in is not on.")
    if not _accept_code(settings, factor, code, time.time()):
        raise ValidationFailed(fields={"code": ["Does not match."]})
    return _new_recovery_codes(session, user.id)


def disable_totp(
    session: Session,
    settings: Settings,
    user: User,
    *,
    code: str | None = None,
    password: str | None = None,
) -> None:
    """Turn the factor off (pending or on) and drop the recovery codes, given a current code
    or the password. Raises Conflict if there is no factor, ValidationFailed naming ``code``
    or ``password`` when the one given does not match (or when neither is given)."""
    factor = _factor(session, user.id, lock=True)
    if factor is None:
        raise Conflict("Multi-factor sign-in is not on.")
    if code is not None:
        if factor.confirmed_at is None or not _accept_code(settings, factor, code, time.time()):
            raise ValidationFailed(fields={"code": ["Does not match."]})
    elif password is not None:
        if not verify_password(user.password_hash, password):
            raise ValidationFailed(fields={"password": ["Does not match."]})
    else:
        raise ValidationFailed(fields={"code": ["Give a current code or your password."]})
    remove_factors(session, user.id)


def remove_factors(session: Session, user_id: uuid.UUID) -> None:
    """Drop the person's factor, recovery codes and open challenges (also the operator's
    reset from the shell: ``fusion users reset-mfa``)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user_id))
    session.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))


def issue_challenge(session: Session, user_id: uuid.UUID) -> MfaChallenge:
    """A fresh login challenge for a person whose password was right (their expired and used
    ones are dropped: challenges do not pile up)."""
    now = datetime.now(UTC)
    session.execute(
        delete(LoginChallenge).where(
            LoginChallenge.user_id == user_id,
            (LoginChallenge.expires_at <= now) | LoginChallenge.used_at.is_not(None),
        )
    )
    challenge = new_opaque_token()
    expires = now + timedelta(seconds=CHALLENGE_TTL_S)
    session.add(LoginChallenge(user_id=user_id, token_hash=digest(challenge), expires_at=expires))
    session.flush()
    return MfaChallenge(challenge, expires)


def _use_recovery_code(session: Session, user_id: uuid.UUID, given: str) -> bool:
    cleaned = given.strip().lower().replace("-", "").replace(" ", "")
    rows = session.scalars(
        select(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        .with_for_update()
    ).all()
    for row in rows:
        try:
            _recovery_hasher.verify(row.code_hash, cleaned)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
        row.used_at = datetime.now(UTC)
        return True
    return False


def redeem_challenge(
    session: Session,
    settings: Settings,
    *,
    challenge: str,
    code: str | None = None,
    recovery_code: str | None = None,
) -> uuid.UUID | None:
    """The person a challenge was issued to, if ``code`` (or ``recovery_code``) is good: the
    challenge is then used up. None if refused: unknown, expired or used challenge, too many
    wrong codes, a locked factor, or a wrong or reused code. A refusal still counts the wrong
    code, and the caller must commit that even though the answer is a refusal."""
    row = session.scalar(
        select(LoginChallenge)
        .where(LoginChallenge.token_hash == digest(challenge))
        .with_for_update()
    )
    now = datetime.now(UTC)
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    if row.failed_attempts >= CHALLENGE_ATTEMPTS:
        return None
    factor = _factor(session, row.user_id, lock=True)
    if factor is None or factor.confirmed_at is None:
        return None
    if factor.locked_until is not None and factor.locked_until > now:
        return None
    if code is not None:
        ok = _accept_code(settings, factor, code, now.timestamp())
    elif recovery_code is not None:
        ok = _use_recovery_code(session, row.user_id, recovery_code)
    else:
        ok = False
    if ok:
        row.used_at = now
        factor.failed_attempts = 0
        factor.locked_until = None
        return row.user_id
    row.failed_attempts += 1
    factor.failed_attempts += 1
    if factor.failed_attempts >= FAILURES_BEFORE_LOCK:
        factor.failed_attempts = 0
        factor.locked_until = now + timedelta(seconds=LOCK_S)
    return None
