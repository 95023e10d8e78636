"""period_rollover.lua + PeriodRunner with an injected clock, on both backends: the real Redis
(the Lua script) and the in-memory twin (wallets.memory_store, the same semantics)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from keeptrusts_authz.periods.budgets import BudgetRule, PeriodRunner
from keeptrusts_authz.periods.calendar import BudgetCalendar
from keeptrusts_authz.store.observability import ObservabilityStore
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.memory_store import MemoryWalletStore
from keeptrusts_authz.wallets.models import SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import USD, Backend, reserve_req, run

NY = BudgetCalendar.of("America/New_York", 2)
TEAM = "team:team_eng"


def rule(rollover: str = "reset", amount: int = 1200 * USD, cap: int = 0) -> BudgetRule:
    return BudgetRule(TEAM, "team_eng", None, "monthly", rollover, amount, cap)


def ny(y: int, m: int, d: int, h: int = 0, minute: int = 0, s: int = 5) -> datetime:
    return datetime(y, m, d, h, minute, s, tzinfo=NY.tz)


class MemoryEventSink:
    """The alert events of ObservabilityStore, deduplicated by (period, dedupe), in memory."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._rows: list[tuple[str, dict[str, str]]] = []

    async def record_event(self, period: str, dedupe: str, fields: Mapping[str, str]) -> str | None:
        if (period, dedupe) in self._seen:
            return None
        self._seen.add((period, dedupe))
        self._rows.insert(0, (f"{len(self._rows) + 1}-0", dict(fields)))
        return self._rows[0][0]

    async def events(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        return self._rows[:count]

    async def close(self) -> None:
        return None


class Env:
    def __init__(self, backend: Backend) -> None:
        self.cfg = backend.config()
        self.store: RedisWalletStore | MemoryWalletStore
        self.obs: ObservabilityStore | MemoryEventSink
        if backend.url is not None:
            self.store = RedisWalletStore.from_settings(self.cfg.redis, self.cfg.organization.id)
            self.obs = ObservabilityStore.from_settings(self.cfg.redis, self.cfg.organization.id)
        else:
            self.store = MemoryWalletStore(self.cfg.organization.id)
            self.obs = MemoryEventSink()
        self.svc = WalletService(self.store, self.cfg)

    def runner(self, *rules: BudgetRule) -> PeriodRunner:
        return PeriodRunner(self.store, NY, list(rules), events=self.obs)

    async def spend(self, cost: int, wallet: str = TEAM) -> None:
        req = reserve_req(cost, (wallet,), "warn", overdraft=wallet)
        await self.store.reserve(req)
        await self.store.settle(SettleRequest(req.reservation_id, cost, False))

    async def balance(self, wallet: str = TEAM) -> int:
        w = await self.store.wallet(wallet)
        return w["balance"] if w else 0

    async def rollovers(self) -> list[Mapping[str, str]]:
        return [e.fields async for e in self.store.iter_ledger() if e.op == "period_rollover"]

    async def audit_ok(self) -> None:
        report = await self.svc.audit()
        assert report.ok, report.mismatches

    async def close(self) -> None:
        await self.store.close()
        await self.obs.close()


async def with_env(backend: Backend, body: object) -> None:
    env = Env(backend)
    try:
        await body(env)  # type: ignore[operator]
    finally:
        await env.close()


@pytest.mark.parametrize(
    ("rollover", "cap", "spent", "expect_balance", "expect_returned", "expect_carried"),
    [
        ("reset", 0, 200, 1200, 1000, 0),
        ("carry", 0, 200, 2200, 0, 1000),
        ("carry_capped", 600, 200, 1800, 400, 600),
        ("carry_capped", 600, 900, 1500, 0, 300),
        ("carry_debt", 0, 1500, 900, 0, -300),
        ("reset", 0, 1500, 1200, 0, 0),  # a reset forgives the overdraft (from the pool)
        ("carry", 0, 1500, 1200, 0, 0),
    ],
)
def test_each_rollover_policy(
    backend: Backend,
    rollover: str,
    cap: int,
    spent: int,
    expect_balance: int,
    expect_returned: int,
    expect_carried: int,
) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        r = rule(rollover, cap=cap * USD)
        runner = env.runner(r)
        assert [x.status for x in await runner.run(ny(2026, 12, 1))] == ["applied"]
        assert await env.balance() == 1200 * USD
        await env.spend(spent * USD)
        pool_before = (await env.store.wallet("org") or {})["balance"]
        res = await runner.run(ny(2027, 1, 1))
        assert [(x.period_id, x.status) for x in res] == [("2027-01", "applied")]
        assert await env.balance() == expect_balance * USD
        jan = (await env.rollovers())[-1]
        assert jan["period"] == "2027-01" and jan["rollover"] == rollover
        assert int(jan["returned"]) == expect_returned * USD
        assert int(jan["carried_in"]) == expect_carried * USD
        pool_after = (await env.store.wallet("org") or {})["balance"]
        assert pool_before - pool_after == int(jan["delta"])
        await env.audit_ok()

    run(with_env(backend, body))


def test_run_twice_and_racing_runners_apply_once(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        runners = [env.runner(rule()) for _ in range(8)]
        at = ny(2027, 1, 1)
        results = await asyncio.gather(*(r.run(at) for r in runners))
        statuses = sorted(x.status for res in results for x in res)
        assert statuses.count("applied") == 1
        assert set(statuses) <= {"applied", "replayed"}
        assert await env.balance() == 1200 * USD
        assert [x.status for x in await runners[0].run(at)] == []
        assert len(await env.rollovers()) == 1
        await env.audit_ok()

    run(with_env(backend, body))


def test_catch_up_over_three_missed_boundaries_in_order(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        runner = env.runner(rule("carry"))
        await runner.run(ny(2026, 9, 15))
        res = await runner.run(ny(2026, 12, 20))  # down over Oct, Nov, Dec boundaries
        assert [(x.period_id, x.status) for x in res] == [
            ("2026-10", "applied"),
            ("2026-11", "applied"),
            ("2026-12", "applied"),
        ]
        assert [e["period"] for e in await env.rollovers()] == [
            "2026-09",
            "2026-10",
            "2026-11",
            "2026-12",
        ]
        assert await env.balance() == 4 * 1200 * USD
        # A stale period (an older id than applied) is refused by the script itself.
        out = await env.store.apply_period_boundary(
            TEAM,
            "2026-10",
            rollover="carry",
            amount=USD,
            carry_cap=0,
            period_start_ms=0,
            actor="t",
            description="",
        )
        assert out.status == "stale" and out.applied_period == "2026-12"
        await env.audit_ok()

    run(with_env(backend, body))


def test_insufficient_pool_is_refused_alerted_and_retried(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(1000 * USD, "USD", "seed", "test")
        runner = env.runner(rule())
        res = await runner.run(ny(2026, 12, 1))
        assert [x.status for x in res] == ["insufficient"]
        assert await env.balance() == 0
        assert (await env.store.wallet("org") or {})["balance"] == 1000 * USD
        events = [f for _, f in await env.obs.events()]
        assert [e["kind"] for e in events] == ["period_allocation_refused"]
        await runner.run(ny(2026, 12, 1, 1))  # refused again: alerted once per period
        assert len(await env.obs.events()) == 1
        await env.svc.credit(1000 * USD, "USD", "top-up", "test")
        res = await runner.run(ny(2026, 12, 1, 2))
        assert [x.status for x in res] == ["applied"]
        assert (await env.store.wallet("org") or {})["balance"] == 800 * USD
        await env.audit_ok()

    run(with_env(backend, body))


def test_reservation_straddling_a_boundary(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        runner = env.runner(rule("reset"))
        await runner.run(ny(2026, 12, 1))
        req = reserve_req(100 * USD, (TEAM,), "block")
        await env.store.reserve(req)  # open across the boundary: 100 held, 1100 available
        await runner.run(ny(2027, 1, 1))
        jan = (await env.rollovers())[-1]
        assert int(jan["returned"]) == 1100 * USD  # only the available balance goes back
        assert await env.balance() == 1200 * USD
        await env.store.settle(SettleRequest(req.reservation_id, 40 * USD, False))
        assert await env.balance() == 1260 * USD  # the unused part of the hold returns
        w = await env.store.wallet(TEAM) or {}
        assert w["reserved"] == 0
        await env.audit_ok()

    run(with_env(backend, body))


def test_forecast_marks_at_risk_and_alerts_once_per_period(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        runner = env.runner(rule())
        await runner.run(ny(2026, 12, 1))
        await env.spend(100 * USD)
        # Applied at Redis's real clock; the forecast's clock is injected: 5 days into December.
        [st] = await runner.forecast(ny(2026, 12, 6))
        assert st.spent == 100 * USD and st.status == "ok"
        await env.spend(200 * USD)
        [st] = await runner.forecast(ny(2026, 12, 6))
        assert st.projected_spend == 300 * USD * 31 * 24 * 3600 // (5 * 24 * 3600 + 5)
        assert st.status == "at_risk"
        await runner.forecast(ny(2026, 12, 7))
        events = [f for _, f in await env.obs.events()]
        assert [(e["kind"], e["period"]) for e in events] == [("period_at_risk", "2026-12")]

    run(with_env(backend, body))


def test_budget_period_kinds_use_their_ids(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        rules = [
            BudgetRule("user:alice", "team_eng", "alice", "weekly", "carry", 10 * USD, 0),
            BudgetRule("team:team_ops", "team_ops", None, "quarterly", "reset", 100 * USD, 0),
            BudgetRule("team:team_support", "team_support", None, "daily", "reset", USD, 0),
        ]
        res = await env.runner(*rules).run(datetime(2027, 1, 2, 12, tzinfo=UTC))
        assert [(x.wallet_id, x.period_id) for x in res] == [
            ("user:alice", "2026-W53"),
            ("team:team_ops", "2026-Q4"),
            ("team:team_support", "2027-01-02"),
        ]
        await env.audit_ok()

    run(with_env(backend, body))


def test_service_workers_on_two_replicas_apply_each_boundary_once(backend: Backend) -> None:
    from keeptrusts_authz.periods.worker import PeriodWorker

    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        clock = {"now": ny(2026, 12, 31, 23, 59, 58)}
        workers = [
            PeriodWorker(env.runner(rule("carry")), 0.05, clock=lambda: clock["now"])
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        try:
            await asyncio.sleep(0.3)
            clock["now"] = ny(2027, 1, 1, 0, 0, 1)  # the boundary passes while both run
            await asyncio.sleep(0.3)
        finally:
            for w in workers:
                await w.close()
        assert [e["period"] for e in await env.rollovers()] == ["2026-12", "2027-01"]
        assert await env.balance() == 2400 * USD
        await env.audit_ok()

    run(with_env(backend, body))


def test_late_settlement_is_charged_to_the_period_of_its_reservation(redis_url: str) -> None:
    # Redis only: it rewrites the reservation's created_ms behind the store's back.
    from keeptrusts_authz.reports.chargeback import build_report, parse_period
    from keeptrusts_authz.store.keys import Keys
    from tests.wallets.support import sync_client

    async def body(env: Env) -> None:
        await env.svc.credit(10_000 * USD, "USD", "seed", "test")
        await env.svc.allocate(TEAM, 500 * USD, "USD", "seed", "test")
        now = datetime.now(UTC)
        this = NY.period_at("monthly", now)
        last = NY.previous(this)
        req = reserve_req(50 * USD, (TEAM,), "block")
        await env.store.reserve(req)
        # The reservation was made in the previous period (a request in flight at the boundary).
        client = sync_client(redis_url)
        try:
            key = Keys(env.store.org_id).reservation(req.reservation_id)
            client.hset(key, "created_ms", str(last.end_ms - 1000))
        finally:
            client.close()
        await env.store.settle(SettleRequest(req.reservation_id, 30 * USD, False))
        prev = await build_report(env.store, parse_period(last.id, calendar=NY))
        cur = await build_report(env.store, parse_period(this.id, calendar=NY))
        assert prev.totals.spent == 30 * USD and cur.totals.spent == 0
        assert any("1 late settlement(s) totalling 30.00" in n for n in prev.notes), prev.notes
        assert not prev.check() and not cur.check()
        await env.audit_ok()

    run(with_env(Backend("redis", redis_url), body))


def test_a_short_pool_funds_budgets_in_config_order(backend: Backend) -> None:
    async def body(env: Env) -> None:
        await env.svc.credit(1500 * USD, "USD", "seed", "test")
        second = BudgetRule("team:team_ops", "team_ops", None, "monthly", "reset", 1000 * USD, 0)
        res = await env.runner(rule(), second).run(ny(2026, 12, 1))
        assert [(x.wallet_id, x.status) for x in res] == [
            (TEAM, "applied"),
            ("team:team_ops", "insufficient"),
        ]
        assert (await env.store.wallet("org") or {})["balance"] == 300 * USD
        await env.audit_ok()

    run(with_env(backend, body))
