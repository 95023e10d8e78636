"""The wallet API stack of tests/api (real serve, real Envoy, real Redis, fake provider)."""

from tests.api.conftest import api, api_stack  # noqa: F401  (fixtures, re-used as they are)
