"""One home for the module-scoped default stack that many Envoy test modules drive: the fake
provider, the full stack (real `serve`, real Envoy, real Redis) of `stack_config` unchanged, and
an autouse emptying of Redis before each test that keeps the epochs (the module's service keeps
running across its tests, and must not see a lost store).

A test module takes them by importing them (the fixtures are named `provider`, `stack` and
`flush_store`; the functions carry a `_fixture` suffix so that a test's `stack` argument shadows
no import), which registers them for that module alone (module scope: one stack per importing
module, as when each module defined its own copy):

    from tests.stack_fixtures import (  # noqa: F401  (fixtures)
        flush_store_fixture,
        provider_fixture,
        stack_fixture,
    )

A module that needs another config or another per-test reset defines its own `stack` or its own
autouse fixture and imports only what it shares.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider


@pytest.fixture(scope="module", name="provider")
def provider_fixture() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module", name="stack")
def stack_fixture(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    with Stack(stack_config(redis_server.url, provider.url)) as s:
        yield s


@pytest.fixture(autouse=True, name="flush_store")
def flush_store_fixture(redis_server: RedisServer) -> None:
    # The stack's service runs across tests: empty Redis the way a kept store looks to it.
    empty_keeping_epochs(redis_server.url)
