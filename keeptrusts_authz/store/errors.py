"""Storage-layer errors. `StoreUnavailableError` is also the domain's `StoreUnavailable`, so
callers above the store only need the domain types."""

from __future__ import annotations

from keeptrusts_authz.errors import StoreUnavailable


class StoreUnavailableError(StoreUnavailable):
    """Redis could not be reached or did not answer in time (message names host:port only)."""


class StoreRefused(Exception):
    """A script refused an admin move; `reason` is unknown_wallet, insufficient or conflict."""

    def __init__(self, reason: str, wallet: str = "", available: int = 0) -> None:
        super().__init__(f"{reason}: {wallet}" if wallet else reason)
        self.reason = reason
        self.wallet = wallet
        self.available = available


class StoreDataError(Exception):
    """Redis answered with something the store did not expect (a bug or tampered data)."""


__all__ = ["StoreDataError", "StoreRefused", "StoreUnavailableError"]
