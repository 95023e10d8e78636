"""Restore figures: `keeptrusts-authz restore` (WalletService.restore) of N wallets from M archived
ledger entries (written straight into PostgreSQL with COPY) into an empty Redis, then the audit.
Own redis-server and PostgreSQL on free loopback ports.

    python bench/restore_bench.py [entries] [wallets]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService
from testing.postgres_server import PostgresServer
from testing.redis_server import RedisServer

ORG = "bench"


def _copy(pg_url: str, n: int, wallets: int) -> None:
    pairs = max(0, (n - 1 - wallets) // 2)
    per = (pairs // wallets + 1) * 3 + 1_000
    with (
        psycopg.connect(pg_url) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY ledger_entries (org, id_ms, id_seq, ts_ms, op, wallet, amount, fields) FROM STDIN"
        ) as cp,
    ):
        now = int(time.time() * 1000) - 3_600_000
        cp.write_row(
            (ORG, now, 0, now, "credit", "org", per * wallets, json.dumps({"op": "credit"}))
        )
        for w in range(wallets):
            f = {"op": "allocate", "from": "org", "to": f"team:t{w}"}
            cp.write_row((ORG, now, 1 + w, now, "allocate", f"team:t{w}", per, json.dumps(f)))
        for i in range(pairs):
            wid = f"team:t{i % wallets}"
            ms = now + 1 + i
            r = {
                "op": "reserve",
                "reservation": f"r{i}",
                "team": f"t{i % wallets}",
                "group": "g",
                "model": "m",
            }
            s = {
                **r,
                "op": "settle",
                "reserved": "3",
                "cost": "2",
                "estimated": "0",
                "input_tokens": "10",
                "output_tokens": "5",
                "label": "m",
            }
            cp.write_row((ORG, ms, 0, ms, "reserve", wid, 3, json.dumps(r)))
            cp.write_row((ORG, ms, 1, ms, "settle", wid, 2, json.dumps(s)))


async def _restore(redis_url: str, pg_url: str) -> tuple[float, float, object]:
    cfg = parse_config(
        {
            "organization": {"id": ORG, "currency": "USD"},
            "redis": {"url": redis_url, "socket_timeout_seconds": 60},
            "ledger": {"postgres_url": pg_url},
        }
    )
    store = RedisWalletStore.from_settings(cfg.redis, ORG)
    archive = ArchiveStore(pg_url)
    svc = WalletService(store, cfg, archive=archive)
    t0 = time.perf_counter()
    report = await svc.restore(archive)
    t1 = time.perf_counter()
    audit = await svc.audit(archive)
    t2 = time.perf_counter()
    await store.close()
    assert audit.ok, audit.mismatches[:5]
    return t1 - t0, t2 - t1, report


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    wallets = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    with RedisServer() as rs, PostgresServer() as pg:
        url = pg.create_database()
        asyncio.run(migrate(url))
        _copy(url, n, wallets)
        restore_s, audit_s, report = asyncio.run(_restore(rs.url, url))
        print(
            f"restore: {report.wallets} wallets from {report.entries} ledger entries in "  # type: ignore[attr-defined]
            f"{restore_s:.2f} s ({report.entries / restore_s:,.0f} entries/s); "  # type: ignore[attr-defined]
            f"audit after restore {audit_s:.2f} s"
        )


if __name__ == "__main__":
    main()
