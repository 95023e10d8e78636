"""Ledger of record figures: audit time at N archived ledger entries (default 1,000,000, written
straight into PostgreSQL with COPY) for the checkpointed and the full audit, and archiver
throughput Redis -> PostgreSQL. Own redis-server and PostgreSQL on free loopback ports.

    python bench/ledger_bench.py [entries]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import redis.asyncio as aredis

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.archiver import Archiver
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService
from testing.postgres_server import PostgresServer
from testing.redis_server import RedisServer

ORG = "bench"
TEAM = "team:team_eng"


def _cfg(redis_url: str):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "organization": {"id": ORG, "currency": "USD"},
            "redis": {"url": redis_url, "socket_timeout_seconds": 30},
        }
    )


def _copy_entries(pg_url: str, n: int) -> dict[str, dict[str, int]]:
    """credit + allocate, then reserve/settle pairs; returns the wallets they add up to."""
    pairs = (n - 2) // 2
    fund = pairs * 3 + 1_000
    org = {"balance": 0, "reserved": 0, "allocated_total": fund, "spent_total": 0}
    team = {"balance": fund, "reserved": 0, "allocated_total": fund, "spent_total": 0}
    with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ledger_entries (org, id_ms, id_seq, ts_ms, op, wallet, amount, fields) FROM STDIN"
        ) as cp:
            cp.write_row((ORG, 1, 0, 1, "credit", "org", fund, json.dumps({"op": "credit"})))
            allocate = {"op": "allocate", "from": "org", "to": TEAM}
            cp.write_row((ORG, 1, 1, 1, "allocate", TEAM, fund, json.dumps(allocate)))
            for i in range(pairs):
                rid = f"r{i}"
                ms = 2 + i
                reserve = {"op": "reserve", "reservation": rid}
                settle = {"op": "settle", "reservation": rid, "reserved": "3", "cost": "2"}
                cp.write_row((ORG, ms, 0, ms, "reserve", TEAM, 3, json.dumps(reserve)))
                cp.write_row((ORG, ms, 1, ms, "settle", TEAM, 2, json.dumps(settle)))
        conn.commit()
    team["balance"] -= pairs * 2
    team["spent_total"] += pairs * 2
    return {"org": org, TEAM: team}


async def _audit_figures(redis_url: str, pg_url: str, n: int) -> None:
    t0 = time.perf_counter()
    wallets = await asyncio.to_thread(_copy_entries, pg_url, n)
    print(f"generated {n:,} archived entries with COPY in {time.perf_counter() - t0:.1f}s")
    r = aredis.Redis.from_url(redis_url, decode_responses=True)
    for wid, vals in wallets.items():
        await r.sadd(f"kt:{{{ORG}}}:wallets", wid)
        await r.hset(f"kt:{{{ORG}}}:w:{wid}", mapping={**vals, "currency": "USD"})
    # Redis keeps the tail that ends at the archived high-water mark (as after an archive pass).
    pairs = (n - 2) // 2
    last = {"op": "settle", "wallet": TEAM, "amount": "2", "reservation": f"r{pairs - 1}"}
    await r.xadd(
        f"kt:{{{ORG}}}:ledger", {**last, "reserved": "3", "cost": "2"}, id=f"{pairs + 1}-1"
    )
    await r.aclose()
    store = RedisWalletStore.from_settings(_cfg(redis_url).redis, ORG)
    svc = WalletService(store, _cfg(redis_url))
    archive = ArchiveStore(pg_url)
    for label, full in (("full (genesis, writes checkpoint)", True), ("checkpointed", False)):
        t0 = time.perf_counter()
        report = await svc.audit(archive, full=full)
        dt = time.perf_counter() - t0
        print(
            f"audit {label}: {report.entries:,} entries, ok={report.ok}, {dt:.2f}s"
            + ("" if report.ok else f" {report.mismatches[:3]}")
        )
    await store.close()


async def _archive_figures(redis_url: str, pg_url: str, n: int) -> None:
    r = aredis.Redis.from_url(redis_url, decode_responses=True)
    key = f"kt:{{{ORG}}}:ledger"
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(
            key,
            {"op": "reserve", "wallet": TEAM, "amount": "3", "reservation": f"a{i}", "ts_ms": "1"},
        )
        if i % 5000 == 4999:
            await pipe.execute()
    await pipe.execute()
    arch = Archiver(r, ArchiveStore(pg_url), ORG, tail_entries=1000, batch=5000)
    t0 = time.perf_counter()
    res = await arch.run_once()
    dt = time.perf_counter() - t0
    print(
        f"archiver: {res.archived:,} entries Redis -> PostgreSQL in {dt:.2f}s "
        f"({res.archived / dt:,.0f} entries/s), trimmed {res.trimmed:,}, Redis keeps "
        f"{await r.xlen(key):,}"
    )
    await r.aclose()


async def main(n: int) -> None:
    with RedisServer() as rs, PostgresServer() as pg:
        url = pg.create_database()
        await migrate(url)
        await _audit_figures(rs.url, url, n)
        await _archive_figures(rs.url, url, min(n, 200_000))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(main(int(args[0]) if args else 1_000_000))
