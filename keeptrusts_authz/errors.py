"""Domain error types shared by every transport (gRPC API, CLI, gateway).

Each error carries a stable machine `code`, a human `message` (never a Redis key, token or secret),
the HTTP status the REST/gRPC layer maps it to, and structured `details` for response bodies.
"""

from __future__ import annotations

from typing import Any, ClassVar


class KeeptrustsError(Exception):
    """Base of all domain errors."""

    def __init__(
        self, code: str, message: str, http_status: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class _FixedError(KeeptrustsError):
    """An error type whose code and HTTP status are fixed by the class."""

    CODE: ClassVar[str] = "error"
    HTTP_STATUS: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(self.CODE, message, self.HTTP_STATUS, details)


class InvalidInput(_FixedError):
    CODE = "invalid_input"
    HTTP_STATUS = 400


class BalanceLimit(InvalidInput):
    """A move would take a wallet balance or total past 2^53 - 1 micros (refused, nothing
    written)."""

    CODE = "balance_limit"


class CurrencyMismatch(_FixedError):
    CODE = "currency_mismatch"
    HTTP_STATUS = 400


class UnknownWallet(_FixedError):
    CODE = "unknown_wallet"
    HTTP_STATUS = 404


class InsufficientFunds(_FixedError):
    CODE = "insufficient_funds"
    HTTP_STATUS = 409


class UserNotInTeam(_FixedError):
    """A user wallet named for a team it does not belong to (users belong to one team)."""

    CODE = "user_not_in_team"
    HTTP_STATUS = 409


class Conflict(_FixedError):
    CODE = "conflict"
    HTTP_STATUS = 409


class StoreError(Exception):
    """Base of every storage failure. `transient` says "not now" (retry later, fail closed with
    503) rather than "never" (data the store did not expect: a bug or tampered data)."""

    transient: ClassVar[bool] = False


class StoreUnavailable(StoreError, _FixedError):
    """The store could not be reached or answered "not now" (message names host:port only)."""

    CODE = "store_unavailable"
    HTTP_STATUS = 503
    transient = True


class StoreDataError(StoreError):
    """The store answered with something it should not have (a bug or tampered data)."""


class StoreRegressed(_FixedError):
    """The store came back empty, rolled back or replaced: the books it holds are not the books
    the service saw. Never a StoreUnavailable (an `on_store_error: allow` must not serve it)."""

    CODE = "store_regressed"
    HTTP_STATUS = 503


__all__ = [
    "Conflict",
    "CurrencyMismatch",
    "InsufficientFunds",
    "InvalidInput",
    "KeeptrustsError",
    "StoreDataError",
    "StoreError",
    "StoreRegressed",
    "StoreUnavailable",
    "UnknownWallet",
    "UserNotInTeam",
]
