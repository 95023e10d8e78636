"""Through the real Envoy: the service's period task funds a team from its budget (refused while
the pool is empty, retried, applied once the pool is credited) and the team spends in the period."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from keeptrusts_authz.periods.calendar import BudgetCalendar
from keeptrusts_authz.wallets.service import WalletService
from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
BODY = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    cfg = stack_config(
        redis_server.url,
        "http://127.0.0.1:1",
        budget_calendar={"timezone": "America/New_York", "run_interval_seconds": 0.2},
        budgets=[{"team_id": "team_engineering", "amount": "25", "period": "monthly"}],
    )
    with FakeProvider() as provider:
        cfg["providers"] = [{**p, "url": provider.url} for p in cfg["providers"]]
        with Stack(cfg) as s:
            yield s


def _wait_balance(stack: Stack, wallet: str, micros: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        w = stack.wallets(lambda svc: svc.store.wallet(wallet))
        got = w["balance"] if w else 0
        if got == micros or time.monotonic() > deadline:
            return int(got)
        time.sleep(0.1)


def test_team_funded_by_its_budget_then_spends(stack: Stack) -> None:
    status, _, _ = stack.post("/v1/chat/completions", BODY)
    assert status == 402  # no funds yet: the pool is empty, the boundary refused
    time.sleep(0.5)  # the task retried (still refused): nothing moved

    async def credit(svc: WalletService) -> None:
        await svc.credit(100 * USD, "USD", "pool", "test")

    stack.wallets(credit)
    assert _wait_balance(stack, "team:team_engineering", 25 * USD) == 25 * USD

    status, _, raw = stack.post("/v1/chat/completions", BODY)
    assert status == 200, raw
    wallet = stack.wait_settled("team:team_engineering")
    assert wallet.spent_total > 0 and wallet.balance == 25 * USD - wallet.spent_total

    async def entries(svc: WalletService) -> list[dict[str, str]]:
        return [e.fields async for e in svc.store.iter_ledger() if e.op == "period_rollover"]

    rollovers = stack.wallets(entries)
    period = BudgetCalendar.of("America/New_York").period_at("monthly", datetime.now(UTC))
    assert [r["period"] for r in rollovers] == [period.id]  # applied exactly once

    async def audit(svc: WalletService) -> bool:
        return (await svc.audit()).ok

    assert stack.wallets(audit)
