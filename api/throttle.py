"""Throttles of the account-level writes anyone can reach: sign-up, login, org creation.

Each action has two token buckets in Redis (``fusion.ratelimit.bucket``, the one the store
clients share): one per client IP and one for everybody, each holding a minute's allowance
and refilled evenly over the minute. A request takes one token from both; an empty bucket is
a 429 with ``Retry-After`` (the seconds until a token is back). The per-IP bucket keeps one
address from spending everyone's allowance; the global one bounds what many addresses
together can make the hub do (each sign-up costs an argon2 hash). Like the org quotas, the
throttles are not enforced while Redis is unreachable (the hashing cap in
``fusion.auth.passwords`` still holds).

The client IP is the connection's ``REMOTE_ADDR``. ``X-Forwarded-For`` is believed only as
far as ``FUSION_TRUSTED_PROXIES`` says: with N proxies in front, each appends the address it
saw, so the client is the N-th entry from the right; anything left of it was written by the
client and proves nothing. IPv6 clients are counted per /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable
from enum import StrEnum

import redis
from flask import request

from api.context import hub
from api.quota import QuotaExceeded
from fusion.config import Settings
from fusion.ratelimit.bucket import BucketConfig, TokenBucket

log = logging.getLogger(__name__)
WINDOW_S = 60
SUBJECT_PREFIX = "throttle:"
THROTTLED = "Too many attempts from here or in all; retry after the Retry-After seconds."


class Action(StrEnum):
    SIGNUP = "signup"
    LOGIN = "login"
    ORG_CREATE = "org_create"


# (per IP, in all) per minute, from the settings.
LIMITS: dict[Action, Callable[[Settings], tuple[int, int]]] = {
    Action.SIGNUP: lambda s: (s.signup_per_ip_per_minute, s.signup_per_minute),
    Action.LOGIN: lambda s: (s.login_per_ip_per_minute, s.login_per_minute),
    Action.ORG_CREATE: lambda s: (s.org_create_per_ip_per_minute, s.org_create_per_minute),
}


def client_ip(trusted_proxies: int) -> str:
    """The address the throttles count the current request under (an IPv6 one as its /64)."""
    address = request.environ.get("REMOTE_ADDR") or ""
    if trusted_proxies:
        hops = [
            part.strip()
            for header in request.headers.getlist("X-Forwarded-For")
            for part in header.split(",")
            if part.strip()
        ]
        if len(hops) >= trusted_proxies:
            address = hops[-trusted_proxies]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def charge(action: Action) -> None:
    """Take one token of ``action`` for the caller's IP and one from everybody's; raises
    QuotaExceeded (429, with the seconds to wait) when either bucket is empty. The IP's
    bucket is tried first, so one address's refused requests do not drain the shared one."""
    settings = hub().settings
    per_ip, in_all = LIMITS[action](settings)
    subjects = (
        (f"{action.value}:ip:{client_ip(settings.trusted_proxies)}", per_ip),
        (f"{action.value}:all", in_all),
    )
    try:
        for subject, allowance in subjects:
            bucket = TokenBucket(
                hub().redis,
                SUBJECT_PREFIX + subject,
                BucketConfig(capacity=allowance, refill_rate=allowance / WINDOW_S, margin=0),
            )
            grant = bucket.take(queue=False)
            if not grant.granted:
                raise QuotaExceeded(max(1, math.ceil(grant.wait_s)), THROTTLED)
    except redis.RedisError:
        log.warning("%s throttle unavailable (redis); allowing the request", action.value)
