"""Time to apply one budget period boundary to N wallets (default 1,000) on a real redis-server.

    .venv/bin/python bench/periods_bench.py [--wallets 1000]

Each wallet gets a monthly `carry_capped` budget; the December boundary is applied first (not
timed), every wallet spends a little, then the January boundary is timed: one PeriodRunner.run,
i.e. one pipelined read of the period states plus one period_rollover.lua call per wallet. A
second run (everything a replay-free no-op: nothing due) and the audit are timed too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeptrusts_authz.config.loader import parse_config
from keeptrusts_authz.periods.budgets import PeriodRunner, calendar_of, rules_of
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService
from testing.redis_server import RedisServer

USD = 1_000_000


async def bench(url: str, n: int) -> None:
    teams = [f"team_{i:04d}" for i in range(n)]
    cfg = parse_config(
        {
            "organization": {"id": "bench"},
            "consumer_groups": [
                {"name": f"g{i}", "api_key": f"kt_bench_{i}", "wallet_team_id": t}
                for i, t in enumerate(teams)
            ],
            "budget_calendar": {"timezone": "America/New_York", "fiscal_year_start_month": 2},
            "budgets": [
                {
                    "team_id": t,
                    "amount": "100",
                    "period": "monthly",
                    "rollover": "carry_capped",
                    "carry_cap": "30",
                }
                for t in teams
            ],
            "redis": {"url": url, "socket_timeout_seconds": 30},
        }
    )
    store = RedisWalletStore.from_settings(cfg.redis, "bench")
    svc = WalletService(store, cfg)
    cal = calendar_of(cfg)
    runner = PeriodRunner(store, cal, rules_of(cfg))
    try:
        await svc.credit(n * 1000 * USD, "USD", "bench", "bench")
        await runner.run(datetime(2026, 12, 1, 0, 0, 5, tzinfo=cal.tz))
        t0 = time.perf_counter()
        res = await runner.run(datetime(2027, 1, 1, 0, 0, 5, tzinfo=cal.tz))
        dt = time.perf_counter() - t0
        assert len(res) == n and all(r.status == "applied" for r in res), "not all applied"
        t1 = time.perf_counter()
        again = await runner.run(datetime(2027, 1, 1, 0, 0, 6, tzinfo=cal.tz))
        dt_again = time.perf_counter() - t1
        assert again == []
        t2 = time.perf_counter()
        audit = await svc.audit()
        dt_audit = time.perf_counter() - t2
        assert audit.ok, audit.mismatches[:5]
        print(f"boundary for {n} wallets: {dt * 1000:.0f} ms ({dt / n * 1e6:.0f} us/wallet)")
        print(f"second run (nothing due): {dt_again * 1000:.0f} ms")
        print(f"audit of {audit.entries} ledger entries: {dt_audit * 1000:.0f} ms")
    finally:
        await store.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wallets", type=int, default=1000)
    args, _ = ap.parse_known_args()  # bench/run.py passes its first argument to every bench
    with RedisServer() as server:
        asyncio.run(bench(server.url, args.wallets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
