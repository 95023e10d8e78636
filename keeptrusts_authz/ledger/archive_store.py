"""PostgreSQL side of the ledger of record: the append-only `ledger_entries` table and the audit's
balance snapshots. Stream ids are Redis ids `<ms>-<seq>`; amounts are integer micro-units."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from keeptrusts_authz.wallets.models import LedgerCheckpoint, LedgerEntry


def split_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or "0")


def join_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


Snapshot = LedgerCheckpoint


class ArchiveStore:
    """The archived ledger of every organization in one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self._url, autocommit=True)

    async def last_archived_id(self, org: str) -> str | None:
        """The newest stream id archived for `org` (None: nothing archived yet). Redis's ledger
        must never end before it: a Redis ledger that does was lost or rolled back."""
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT id_ms, id_seq FROM ledger_entries WHERE org = %s"
                " ORDER BY id_ms DESC, id_seq DESC LIMIT 1",
                (org,),
            )
            row = await cur.fetchone()
        return None if row is None else join_id(row[0], row[1])

    async def count(self, org: str) -> int:
        async with await self.connect() as conn:
            cur = await conn.execute("SELECT count(*) FROM ledger_entries WHERE org = %s", (org,))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    async def insert(
        conn: psycopg.AsyncConnection[Any], org: str, entries: Sequence[LedgerEntry]
    ) -> int:
        """Append `entries` (already archived ones are skipped); returns how many were new."""
        if not entries:
            return 0
        rows = []
        for e in entries:
            ms, seq = split_id(e.id)
            rows.append((org, ms, seq, e.ts_ms, e.op, e.wallet, e.amount, json.dumps(e.fields)))
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO ledger_entries"
                " (org, id_ms, id_seq, ts_ms, op, wallet, amount, fields)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
                " ON CONFLICT (org, id_ms, id_seq) DO NOTHING",
                rows,
            )
            return max(cur.rowcount, 0)

    async def iter_entries(
        self, org: str, after: str | None = None, upto: str | None = None, batch: int = 20_000
    ) -> AsyncIterator[LedgerEntry]:
        """Archived entries of `org` oldest first, strictly after `after` (None: from genesis) and
        up to and including `upto` (None: to the end)."""
        ms, seq = split_id(after) if after else (-1, -1)
        top_ms, top_seq = split_id(upto) if upto else (2**62, 0)
        async with await self.connect() as conn:
            while True:
                cur = await conn.execute(
                    "SELECT id_ms, id_seq, ts_ms, op, wallet, amount, fields FROM ledger_entries"
                    " WHERE org = %s AND (id_ms, id_seq) > (%s, %s)"
                    " AND (id_ms, id_seq) <= (%s, %s)"
                    " ORDER BY id_ms, id_seq LIMIT %s",
                    (org, ms, seq, top_ms, top_seq, batch),
                )
                rows = await cur.fetchall()
                for r in rows:
                    yield LedgerEntry(
                        id=join_id(r[0], r[1]),
                        ts_ms=r[2],
                        op=r[3],
                        wallet=r[4],
                        amount=r[5],
                        fields={str(k): str(v) for k, v in r[6].items()},
                    )
                if len(rows) < batch:
                    return
                ms, seq = rows[-1][0], rows[-1][1]

    async def record_restore(
        self,
        org: str,
        *,
        epoch: str,
        high_water: str,
        reason: str,
        actor: str,
        report: dict[str, Any],
    ) -> None:
        """Keep the record of one restore run (migration 003)."""
        ms, seq = split_id(high_water)
        async with await self.connect() as conn:
            await conn.execute(
                "INSERT INTO restores (org, epoch, high_ms, high_seq, reason, report, actor)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
                (org, epoch, ms, seq, reason, json.dumps(report), actor),
            )

    async def restores(self, org: str) -> list[dict[str, Any]]:
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT epoch, high_ms, high_seq, reason, report, actor FROM restores"
                " WHERE org = %s ORDER BY id",
                (org,),
            )
            rows = await cur.fetchall()
        return [
            {
                "epoch": r[0],
                "high_water": join_id(r[1], r[2]),
                "reason": r[3],
                "report": r[4],
                "actor": r[5],
            }
            for r in rows
        ]

    async def page(
        self, org: str, count: int, *, before: str | None = None, wallet: str | None = None
    ) -> list[LedgerEntry]:
        """Newest first: up to `count` archived entries older than `before`, optionally only
        those touching `wallet` (as `wallet`, `from` or `to`, the Redis listing's rule)."""
        ms, seq = split_id(before) if before else (2**62, 0)
        sql = (
            "SELECT id_ms, id_seq, ts_ms, op, wallet, amount, fields FROM ledger_entries"
            " WHERE org = %s AND (id_ms, id_seq) < (%s, %s)"
        )
        params: list[Any] = [org, ms, seq]
        if wallet is not None:
            sql += " AND (wallet = %s OR fields->>'from' = %s OR fields->>'to' = %s)"
            params += [wallet, wallet, wallet]
        sql += " ORDER BY id_ms DESC, id_seq DESC LIMIT %s"
        params.append(count)
        async with await self.connect() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        return [
            LedgerEntry(
                id=join_id(r[0], r[1]),
                ts_ms=r[2],
                op=r[3],
                wallet=r[4],
                amount=r[5],
                fields={str(k): str(v) for k, v in r[6].items()},
            )
            for r in rows
        ]

    async def save_snapshot(self, snap: Snapshot) -> None:
        ms, seq = split_id(snap.upto)
        async with await self.connect() as conn:
            await conn.execute(
                "INSERT INTO balance_snapshots"
                " (org, upto_ms, upto_seq, entries, wallets, open_reservations)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb)"
                " ON CONFLICT (org, upto_ms, upto_seq) DO NOTHING",
                (
                    snap.org,
                    ms,
                    seq,
                    snap.entries,
                    json.dumps(snap.wallets),
                    json.dumps({k: list(v) for k, v in snap.open_reservations.items()}),
                ),
            )

    async def last_snapshot(self, org: str) -> Snapshot | None:
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT upto_ms, upto_seq, entries, wallets, open_reservations"
                " FROM balance_snapshots WHERE org = %s"
                " ORDER BY upto_ms DESC, upto_seq DESC LIMIT 1",
                (org,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Snapshot(
            org=org,
            upto=join_id(row[0], row[1]),
            entries=int(row[2]),
            wallets={w: {f: int(v) for f, v in d.items()} for w, d in row[3].items()},
            open_reservations={r: (str(v[0]), int(v[1])) for r, v in row[4].items()},
        )


__all__ = ["ArchiveStore", "Snapshot", "join_id", "split_id"]
