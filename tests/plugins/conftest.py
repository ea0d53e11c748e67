"""Fixtures of the plugin-core tests: a Redis client on the private test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from fusion.config import Settings


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis_lib.Redis]:
    assert settings.redis_url
    client = redis_lib.Redis.from_url(settings.redis_url)
    yield client
    client.close()
