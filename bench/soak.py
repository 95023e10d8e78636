"""Soak: Redis bytes per request after N reserve+settle cycles on a real redis-server.

    .venv/bin/python bench/soak.py [--requests 30000] [--tail 10000]

Prints Redis `used_memory` growth per request at checkpoints, (a) with the ledger stream left
alone and (b) with it trimmed to a `--tail` of entries (XTRIM MAXLEN ~, standing in for the
PostgreSQL archiver, which trims below what it archived). Closed reservation records expire after
`enforcement.closed_reservation_ttl_seconds`; the soak shortens that to `--closed-ttl` seconds so
the steady state is reached within the run, as it is after 6 h in production.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from testing.redis_server import RedisServer

ORG = "soak"


async def soak(url: str, requests: int, tail: int | None, closed_ttl: int) -> list[str]:
    cfg = parse_config(
        {
            "organization": {"id": ORG},
            "consumer_groups": [{"name": "eng", "api_key": "kt_x", "wallet_team_id": "team_eng"}],
            "redis": {"url": url},
        }
    )
    store = RedisWalletStore.from_settings(cfg.redis, ORG)
    store = RedisWalletStore(store._client, ORG, closed_ttl_seconds=closed_ttl)
    svc = WalletService(store, cfg)
    sync = redis.Redis.from_url(url)
    await svc.integrity.check()
    await svc.credit(10**12, "USD", "soak", "bench")
    await svc.allocate("team:team_eng", 10**11, "USD", "soak", "bench")
    base = int(sync.info("memory")["used_memory"])
    lines = []
    started = time.monotonic()
    step = max(requests // 5, 1)
    for i in range(1, requests + 1):
        rid = "r_" + uuid.uuid4().hex[:24]
        await svc.reserve(
            ReserveRequest(
                rid,
                ("team:team_eng",),
                2000,
                "block",
                None,
                600_000,
                "team_eng",
                "eng",
                "",
                "gpt-4o-mini",
            )
        )
        await svc.settle(SettleRequest(rid, 1500, False))
        if tail is not None and i % 1000 == 0:
            sync.xtrim(Keys(ORG).ledger, maxlen=tail, approximate=True)
        if i % step == 0:
            used = int(sync.info("memory")["used_memory"]) - base
            entries = sync.xlen(Keys(ORG).ledger)
            elapsed = time.monotonic() - started
            lines.append(
                f"  after {i:>7} requests: Redis +{used / 1e6:7.2f} MB"
                f" = {used / i:6.0f} B/request (ledger {entries} entries, {elapsed:.0f} s)"
            )
    await store.close()
    sync.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--tail", type=int, default=10_000)
    parser.add_argument("--closed-ttl", type=int, default=5)
    args = parser.parse_args()
    for tail in (None, args.tail):
        with RedisServer() as server:
            label = "ledger untrimmed" if tail is None else f"ledger trimmed to ~{tail} entries"
            print(f"soak ({label}, closed records kept {args.closed_ttl} s):")
            for line in asyncio.run(soak(server.url, args.requests, tail, args.closed_ttl)):
                print(line)


if __name__ == "__main__":
    main()
