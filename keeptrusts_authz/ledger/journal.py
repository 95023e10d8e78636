"""PostgreSQL side of the settlement journal (migration 004): `wallets.ports.SettlementJournal`.

The settler writes each batch's charges in ONE statement (`INSERT ... SELECT FROM unnest(...)`,
one round trip) on one long-lived connection, under a deadline: a PostgreSQL that is down or
stuck costs the batch at most `timeout` seconds, then the settler settles in Redis anyway
(gateway/settler.py). The connection is dropped on any failure and opened again on the next
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from keeptrusts_authz.wallets.models import JournaledCharge

_INSERT = (
    "INSERT INTO settlement_journal (org, reservation_id, wallet, team, grp, usr, model,"
    " label_model, cost, estimated, input_tokens, output_tokens, cached_tokens, admitted_ms,"
    " ended_ms, open_until_ms, received_ms)"
    " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::bigint[], %s::boolean[], %s::bigint[], %s::bigint[],"
    " %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
    " ON CONFLICT (org, reservation_id) DO NOTHING RETURNING reservation_id"
)
_SINCE = (
    "SELECT reservation_id, wallet, team, grp, usr, model, label_model, cost, estimated,"
    " input_tokens, output_tokens, cached_tokens, admitted_ms, ended_ms, open_until_ms,"
    " received_ms FROM settlement_journal WHERE org = %s AND received_ms >= %s"
    " ORDER BY received_ms, reservation_id"
)


def _columns(charges: Sequence[JournaledCharge], received_ms: int) -> list[list[Any]]:
    return [
        [c.reservation_id for c in charges],
        [c.wallet for c in charges],
        [c.team for c in charges],
        [c.group for c in charges],
        [c.user for c in charges],
        [c.model for c in charges],
        [c.label_model for c in charges],
        [c.cost for c in charges],
        [c.estimated for c in charges],
        [c.input_tokens for c in charges],
        [c.output_tokens for c in charges],
        [c.cached_tokens for c in charges],
        [c.admitted_ms for c in charges],
        [c.ended_ms for c in charges],
        [c.open_until_ms for c in charges],
        [c.received_ms or received_ms for c in charges],
    ]


_PRUNE = "DELETE FROM settlement_journal WHERE org = %s AND received_ms < %s"


async def prune(conn: psycopg.AsyncConnection[Any], org: str, before_ms: int) -> int:
    """Delete the org's rows received before `before_ms` (index settlement_journal_received);
    the archiver calls it with its high-water time minus `wallets.restore.journal_keep_ms`."""
    cur = await conn.execute(_PRUNE, (org, before_ms))
    return int(cur.rowcount or 0)


class PostgresJournal:
    """The settlement journal of every organization in one PostgreSQL database."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self._url = url
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection is dropped, whatever it says
                await conn.close()

    async def record(self, org: str, charges: Sequence[JournaledCharge]) -> set[str]:
        if not charges:
            return set()
        params = [org, *_columns(charges, time.time_ns() // 1_000_000)]
        async with self._lock:
            try:
                return await asyncio.wait_for(self._insert(params), self._timeout)
            except BaseException:
                await self._drop()
                raise

    async def _insert(self, params: list[Any]) -> set[str]:
        conn = await self._connection()
        cur = await conn.execute(_INSERT, params)
        return {str(row[0]) for row in await cur.fetchall()}

    async def since(self, org: str, received_from_ms: int) -> list[JournaledCharge]:
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
            cur = await conn.execute(_SINCE, (org, received_from_ms))
            rows = await cur.fetchall()
        return [
            JournaledCharge(
                reservation_id=r[0],
                wallet=r[1],
                team=r[2],
                group=r[3],
                user=r[4],
                model=r[5],
                label_model=r[6],
                cost=int(r[7]),
                estimated=bool(r[8]),
                input_tokens=int(r[9]),
                output_tokens=int(r[10]),
                cached_tokens=int(r[11]),
                admitted_ms=int(r[12]),
                ended_ms=int(r[13]),
                open_until_ms=int(r[14]),
                received_ms=int(r[15]),
            )
            for r in rows
        ]

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


__all__ = ["PostgresJournal"]
