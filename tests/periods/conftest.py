"""`backend` (real Redis and the in-memory twin) for the rollover tests, as in tests/wallets."""

from tests.wallets.conftest import backend  # noqa: F401  (fixture, re-used as it is)
