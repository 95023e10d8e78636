"""What the period store returns (the domain owns these; the storage layer fills them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RolloverStatus = Literal["applied", "replayed", "stale", "insufficient", "wrong_team"]


@dataclass(frozen=True)
class RolloverOutcome:
    """The answer of one boundary application (period_rollover.lua)."""

    status: RolloverStatus
    entry_id: str = ""
    delta: int = 0
    balance_after: int = 0
    org_balance: int = 0
    applied_period: str = ""
    # wrong_team: the team the user wallet's record names (differs from the user budget's team)
    recorded_team: str = ""


@dataclass(frozen=True)
class PeriodState:
    """The period last applied to a wallet and how its boundary went (micros)."""

    wallet_id: str
    period_id: str
    entry_id: str
    rollover: str
    allocation: int
    carried_in: int
    returned: int
    forgiven: int
    applied_ms: int
    spent_at_start: int

    @property
    def funded(self) -> int:
        """What the period started with: carried in + its allocation."""
        return self.carried_in + self.allocation


__all__ = ["PeriodState", "RolloverOutcome", "RolloverStatus"]
