"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations).

Each hash or check costs 64 MiB and tens of milliseconds of CPU, so a process computes at most
a few at once (:func:`limit_concurrency`, ``FUSION_PASSWORD_HASH_CONCURRENCY``): a burst of
sign-ups or logins waits its turn briefly and is then refused (:class:`HashingBusy`), rather
than taking the process's memory and every thread with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fusion.auth.errors import HashingBusy

_hasher = PasswordHasher()

DEFAULT_CONCURRENCY = 2
# How long a caller waits for a free slot before HashingBusy (a request thread is held as
# long: keep it short).
WAIT_S = 5.0


class _Gate:
    """A bounded semaphore with a patience: at most ``slots`` hashes at once per process."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.semaphore = threading.BoundedSemaphore(slots)
        self.wait_s = wait_s


_gate = _Gate(DEFAULT_CONCURRENCY, WAIT_S)


def limit_concurrency(slots: int, *, wait_s: float = WAIT_S) -> None:
    """At most ``slots`` password hashes or checks run at once in this process from now on;
    a caller waits up to ``wait_s`` seconds for a free one. Raises ValueError for fewer than
    one slot or a negative wait. Hashes already running finish in the old limit."""
    if slots < 1 or wait_s < 0:
        raise ValueError("need at least one slot and a non-negative wait")
    global _gate
    _gate = _Gate(slots, wait_s)


@contextmanager
def hashing_slot() -> Iterator[None]:
    """Hold one of the process's hashing slots; raises HashingBusy if none frees up in time."""
    gate = _gate
    if not gate.semaphore.acquire(timeout=gate.wait_s):
        raise HashingBusy()
    try:
        yield
    finally:
        gate.semaphore.release()


# Verified against when the email is unknown, so a missing account costs the same time as a
# wrong password and login timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing-only")

MIN_LENGTH = 10
MAX_LENGTH = 256


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; never the same twice for the same input).
    Raises HashingBusy when the process's hashing slots stay taken (see above)."""
    with hashing_slot():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True only if ``password`` matches ``password_hash``; a missing or malformed hash is False
    (and still costs one full verification). Raises HashingBusy when the process's hashing
    slots stay taken."""
    with hashing_slot():
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password (empty if it is acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Must be at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Must be at most {MAX_LENGTH} characters.")
    return problems
