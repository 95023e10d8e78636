"""Shared fixtures: a real redis-server per test session, flushed before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from testing.postgres_server import PostgresServer
from testing.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's real Redis, flushed so each test starts empty."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a fresh empty database on the session's real PostgreSQL."""
    return postgres_server.create_database()


# -- test tiers ----------------------------------------------------------------------------------
# Every test gets exactly one of the markers `unit` (no Redis, no Envoy), `integration` (a real
# redis-server, no Envoy) or `e2e` (the real Envoy binary), from what it uses: the `envoy` marker
# or a module that drives Envoy (testing.envoy_harness, testing.stack) -> e2e; a Redis fixture
# or a module that starts its own redis-server -> integration; anything else -> unit. A test may
# name its tier explicitly (e.g. a seconds-long failover test without Redis: integration).
# `make unit`, `make integration` and `make e2e` select on them (`-m unit` ...).

_ENVOY_MODULES = ("testing.envoy_harness", "testing.stack")
_REDIS_FIXTURES = {"redis_server", "redis_url", "postgres_server", "postgres_url"}


def _module_uses(item: pytest.Item, names: tuple[str, ...]) -> bool:
    module = getattr(item, "module", None)
    if module is None:
        return False
    imported = {getattr(v, "__module__", None) for v in vars(module).values()}
    imported |= {getattr(v, "__name__", None) for v in vars(module).values()}
    return any(n in imported for n in names)


def tier_of(item: pytest.Item) -> str:
    for tier in ("e2e", "integration", "unit"):  # an explicit tier marker wins
        if item.get_closest_marker(tier):
            return tier
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("envoy") or _module_uses(item, _ENVOY_MODULES):
        return "e2e"
    if fixtures & _REDIS_FIXTURES or _module_uses(
        item, ("testing.redis_server", "testing.postgres_server")
    ):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
