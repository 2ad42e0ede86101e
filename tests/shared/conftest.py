"""Fixtures of the Redis-shared state tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._redis import RedisServer


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running redis-server on a free loopback port, stopped at teardown."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server
