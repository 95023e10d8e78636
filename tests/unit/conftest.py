"""Pure-Python tier: no Redis, no Envoy. `backend` is the in-memory wallet store only."""

from __future__ import annotations

import pytest

from tests.wallets.support import Backend


@pytest.fixture
def backend() -> Backend:
    return Backend("memory")
