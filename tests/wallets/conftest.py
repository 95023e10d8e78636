"""`backend`: every wallet-semantics test runs on real Redis AND on the in-memory twin."""

from __future__ import annotations

import pytest

from tests.wallets.support import Backend


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.integration), "memory"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "redis":
        return Backend("redis", request.getfixturevalue("redis_url"))
    return Backend("memory")
