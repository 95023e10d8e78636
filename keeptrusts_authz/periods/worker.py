"""The service's background task: apply due budget boundaries and refresh the forecasts.

Runs on every replica. Exactness does not depend on which replica wins: each boundary is applied
at most once per (wallet, period) by period_rollover.lua, so the others' calls are replays. It
wakes at the next boundary (a second after it) or every `interval` seconds, whichever is first,
and a run after downtime catches up over every missed boundary in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.periods.budgets import PeriodRunner

log = logging.getLogger(__name__)


class PeriodWorker:
    def __init__(
        self,
        runner: PeriodRunner,
        interval_seconds: float,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.runner = runner
        self._interval = interval_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        now = self._clock()
        await self.runner.run(now)
        await self.runner.forecast(now)

    def _sleep_for(self) -> float:
        now = self._clock()
        nxt = min(
            (self.runner.calendar.period_at(r.kind, now).end for r in self.runner.rules),
            default=None,
        )
        if nxt is None:
            return self._interval
        return max(0.5, min(self._interval, (nxt - now).total_seconds() + 1.0))

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreUnavailable:
                m.STORE_ERRORS.labels("periods").inc()
            except Exception:
                log.exception("budget period run failed")
            await asyncio.sleep(self._sleep_for())

    def start(self) -> None:
        if self._task is None and self.runner.rules:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="keeptrusts-periods"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


__all__ = ["PeriodWorker"]
