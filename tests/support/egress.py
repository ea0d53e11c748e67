"""The egress policy of tests that talk to loopback servers directly through the HTTP helper:
private addresses and any port allowed, as ``FUSION_ALLOW_PRIVATE_EGRESS`` does in dev/test.
Tests of the guard itself build strict policies instead."""

from __future__ import annotations

from fusion.security.egress import EgressPolicy

LOOPBACK = EgressPolicy(allow_private=True)
