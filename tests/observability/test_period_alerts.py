"""Spend thresholds of a budget wallet are per budget period (issue 15 item 4): spent in the
period against what the period started with, deduplicated in the period id of
periods/calendar.py; a new period re-arms them and a reclaim fires none. Real Redis."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from keeptrusts_authz.alerts.engine import AlertEngine
from keeptrusts_authz.periods.budgets import BudgetRule
from tests.observability.test_alerts import schema_errors
from tests.periods.test_rollover import TEAM, Env, ny, with_env
from tests.wallets.support import USD, Backend, run

WEEKLY = BudgetRule(TEAM, "team_eng", None, "weekly", "reset", 100 * USD, 0)


def _engine(env: Env, at: list[datetime]) -> AlertEngine:
    cfg = env.cfg.model_copy(
        update={
            "enforcement": env.cfg.enforcement.model_copy(
                update={"alert_thresholds": [50, 80], "low_balance_ratio": 0}
            )
        }
    )
    return AlertEngine(env.obs, cfg, periods=env.runner(WEEKLY), clock=lambda: at[0].timestamp())


def _thresholds(events: list[Any]) -> list[tuple[str, int | None]]:
    return [(e.period, e.threshold) for e in events if e.type == "threshold"]


def test_a_new_budget_period_re_arms_the_thresholds(redis_url: str) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        at = [ny(2026, 12, 1, 9)]  # Tuesday of ISO week 2026-W49
        engine = _engine(env, at)
        runner = env.runner(WEEKLY)
        assert [r.status for r in await runner.run(at[0])] == ["applied"]
        assert _thresholds(await engine.evaluate([TEAM])) == []
        await env.spend(60 * USD)  # 60 % of the week's 100
        first = await engine.evaluate([TEAM])
        assert _thresholds(first) == [("2026-W49", 50)]
        (event,) = first
        payload = event.payload("acme", "USD", Decimal("0.2"))
        assert schema_errors(payload) == []
        assert payload["crossed"] == {
            "measure": "period_spent / period_allocation",
            "limit_percent": "50.00",
            "value_percent": "60.00",
        }
        assert (payload["period_spent"], payload["period_allocation"]) == ("60.00", "100.00")
        assert _thresholds(await engine.evaluate([TEAM])) == []  # once per period

        at[0] = ny(2026, 12, 8, 9)  # the next week: reset to 100
        await runner.run(at[0])
        assert _thresholds(await engine.evaluate([TEAM])) == []  # nothing spent yet this week
        await env.spend(55 * USD)  # lifetime 115 of 200 put in; the week: 55 of 100
        assert _thresholds(await engine.evaluate([TEAM])) == [("2026-W50", 50)]
        await env.spend(30 * USD)
        assert _thresholds(await engine.evaluate([TEAM])) == [("2026-W50", 80)]

    run(with_env(Backend("redis", redis_url), body))


def test_a_reclaim_fires_no_period_threshold(redis_url: str) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        at = [ny(2026, 12, 1, 9)]
        engine = _engine(env, at)
        await env.runner(WEEKLY).run(at[0])
        await env.spend(40 * USD)
        assert _thresholds(await engine.evaluate([TEAM])) == []
        await env.svc.reclaim(TEAM, 55 * USD, "USD", "reclaim", "test")  # balance 60 -> 5
        await env.svc.transfer(TEAM, "team:team_support", 4 * USD, "USD", "move", "test")
        assert _thresholds(await engine.evaluate([TEAM])) == []

    run(with_env(Backend("redis", redis_url), body))


def test_no_period_threshold_before_the_period_is_applied(redis_url: str) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        at = [ny(2026, 12, 1, 9)]
        engine = _engine(env, at)
        await env.svc.allocate(TEAM, 100 * USD, "USD", "by hand", "test")
        await env.spend(90 * USD)  # 90 % of the lifetime funding, but no period applied yet
        assert _thresholds(await engine.evaluate([TEAM])) == []

    run(with_env(Backend("redis", redis_url), body))
