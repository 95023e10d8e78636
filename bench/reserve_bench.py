"""Reserve and settle throughput of the wallet store against a fresh local redis-server.

    .venv/bin/python bench/reserve_bench.py [--reserves 20000] [--concurrency 64] [--batch 256]

One process, one asyncio loop, one client (connection pool): `--concurrency` tasks share
`--reserves` reserve calls (one EVALSHA each, against a team wallet behind an empty user wallet,
so each call walks a two-wallet cascade), then every reservation is settled with `settle_batch`
(pipelines of `--batch` settles). Prints reserves/s, reserve latency percentiles and settles/s,
then checks the ledger audit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from testing.redis_server import RedisServer

USD = 1_000_000


async def bench(url: str, reserves: int, concurrency: int, batch: int) -> dict[str, float]:
    cfg = parse_config(
        {
            "organization": {"id": "bench"},
            "consumer_groups": [{"name": "eng", "api_key": "kt_b", "wallet_team_id": "team_eng"}],
            "redis": {"url": url},
        }
    )
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    svc = WalletService(store, cfg)
    try:
        await svc.credit(10_000_000 * USD, "USD", "bench", "bench")
        await svc.allocate("team:team_eng", 5_000_000 * USD, "USD", "bench", "bench")
        await svc.allocate("user:u0", 1, "USD", "bench", "bench")  # exists, cannot fund
        ids = [f"r_{uuid.uuid4().hex[:24]}" for _ in range(reserves)]
        latencies: list[float] = []
        counter = iter(range(reserves))

        async def worker() -> None:
            for i in counter:
                req = ReserveRequest(
                    ids[i], ("user:u0", "team:team_eng"), 20_000 + i % 1000, "block",
                    None, 600_000, "team_eng", "eng", "u0", "gpt-4o",
                )  # fmt: skip
                t = time.perf_counter()
                res = await svc.reserve(req)
                latencies.append(time.perf_counter() - t)
                assert res.outcome == "reserved", res

        await svc.wallets()  # warm the pool
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        reserve_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        for start in range(0, reserves, batch):
            chunk = [SettleRequest(r, 10_000, False, 100, 20) for r in ids[start : start + batch]]
            results = await svc.settle_batch(chunk)
            assert all(r.outcome == "settled" for r in results)
        settle_s = time.perf_counter() - t0

        report = await svc.audit()
        assert report.ok, report.mismatches
        latencies.sort()
        return {
            "reserves": reserves,
            "concurrency": concurrency,
            "reserves_per_s": reserves / reserve_s,
            "reserve_p50_ms": statistics.median(latencies) * 1000,
            "reserve_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "settle_batch": batch,
            "settles_per_s": reserves / settle_s,
            "audit_entries": report.entries,
        }
    finally:
        await store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reserves", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with RedisServer() as server:
        r = asyncio.run(bench(server.url, args.reserves, args.concurrency, args.batch))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"reserve: {r['reserves_per_s']:,.0f}/s ({r['reserves']:,} reserves, "
        f"{r['concurrency']} tasks, one process; p50 {r['reserve_p50_ms']:.2f} ms, "
        f"p99 {r['reserve_p99_ms']:.2f} ms)"
    )
    print(f"settle:  {r['settles_per_s']:,.0f}/s (settle_batch of {r['settle_batch']})")
    print(f"audit:   ok ({r['audit_entries']:,} ledger entries replayed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
