"""Ledger of record figures: audit time at N archived ledger entries (default 1,000,000, written
straight into PostgreSQL with COPY) for the checkpointed and the full audit, archiver
throughput Redis -> PostgreSQL, and the settle path with and without the settlement journal
(the settler's batches of 256; the journal write is one INSERT ... unnest round trip per batch
before the Redis pipeline). Own redis-server and PostgreSQL on free loopback ports.

    python bench/ledger_bench.py [entries] [--settle-only]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import redis.asyncio as aredis

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.settler import Settler
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.archiver import Archiver
from keeptrusts_authz.ledger.journal import PostgresJournal
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import JournaledCharge, ReserveRequest, SettleRequest
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


async def _settle_run(redis_url: str, journal: PostgresJournal | None, n: int) -> float:
    """Seconds for the settler to write n settles (their reservations made beforehand)."""
    cfg = parse_config(
        {
            "organization": {"id": ORG, "currency": "USD"},
            "redis": {"url": redis_url, "socket_timeout_seconds": 30},
            "consumer_groups": [
                {"name": "engineering", "api_key": "kt_cg_bench", "wallet_team_id": "team_eng"}
            ],
        }
    )
    store = RedisWalletStore.from_settings(cfg.redis, ORG)
    svc = WalletService(store, cfg)
    await svc.credit(10 * n * 1_000_000, "USD", "seed", "bench")
    await svc.allocate(TEAM, 10 * n * 1_000_000, "USD", "seed", "bench")
    reqs = [
        ReserveRequest(
            f"r_{uuid.uuid4().hex[:24]}",
            (TEAM,),
            2_000_000,
            "block",
            None,
            600_000,
            "team_eng",
            "engineering",
            "",
            "gpt-4o",
        )
        for _ in range(n)
    ]
    for i in range(0, n, 500):
        await asyncio.gather(*(svc.reserve(r) for r in reqs[i : i + 500]))
    settler = Settler(svc, journal=journal)
    settler.start()
    t0 = time.perf_counter()
    for r in reqs:
        item = SettleRequest(r.reservation_id, 1_000_000, False, 100, 20, 0, "gpt-4o", "gpt-4o")
        charge = JournaledCharge(
            r.reservation_id,
            TEAM,
            "team_eng",
            "engineering",
            "",
            "gpt-4o",
            "gpt-4o",
            1_000_000,
            False,
            100,
            20,
            0,
        )
        settler.submit(item, None, charge)
    assert await settler.flush(120)
    dt = time.perf_counter() - t0
    await settler.close()
    await store.close()
    return dt


async def _settle_figures(redis_url: str, pg_url: str, n: int) -> None:
    r = aredis.Redis.from_url(redis_url)
    for label, journal in (("without journal", None), ("with journal", PostgresJournal(pg_url))):
        await r.flushall()
        dt = await _settle_run(redis_url, journal, n)
        print(
            f"settle path {label}: {n:,} settles in {dt:.2f}s ({n / dt:,.0f} settles/s, "
            f"{dt / (n / 256) * 1000:.2f} ms per batch of 256)"
        )
        if journal is not None:
            await journal.close()
    journal = PostgresJournal(pg_url)
    batch = [
        JournaledCharge(f"b_{i}_{j}", TEAM, "team_eng", "engineering", "", "m", "m", 1, False)
        for i in range(50)
        for j in range(256)
    ]
    t0 = time.perf_counter()
    for i in range(50):
        await journal.record(ORG, batch[i * 256 : (i + 1) * 256])
    dt = time.perf_counter() - t0
    print(f"journal write alone: {dt / 50 * 1000:.2f} ms per batch of 256 (50 batches)")
    await journal.close()
    await r.aclose()


async def main(n: int, settle_only: bool) -> None:
    with RedisServer() as rs, PostgresServer() as pg:
        url = pg.create_database()
        await migrate(url)
        if not settle_only:
            await _audit_figures(rs.url, url, n)
            await _archive_figures(rs.url, url, min(n, 200_000))
        await _settle_figures(rs.url, url, 20_000)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(main(int(args[0]) if args else 1_000_000, "--settle-only" in sys.argv))
