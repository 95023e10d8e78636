"""The storage the budget periods need, as a protocol the domain owns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from keeptrusts_authz.periods.models import PeriodState, RolloverOutcome


class PeriodStore(Protocol):
    async def apply_period_boundary(
        self,
        wallet_id: str,
        period_id: str,
        *,
        rollover: str,
        amount: int,
        carry_cap: int,
        period_start_ms: int,
        actor: str,
        description: str,
        team: str = "",
    ) -> RolloverOutcome: ...

    async def period_states(self, wallet_ids: Sequence[str]) -> dict[str, PeriodState]: ...

    async def wallets(self) -> dict[str, dict[str, int]]: ...


class EventSink(Protocol):
    """Alert events, deduplicated by (`period` bucket, `dedupe`) (store/observability.py)."""

    async def record_event(
        self, period: str, dedupe: str, fields: Mapping[str, str]
    ) -> str | None: ...


__all__ = ["EventSink", "PeriodStore"]
