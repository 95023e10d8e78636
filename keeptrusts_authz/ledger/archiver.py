"""The archiver: copies an organization's Redis ledger stream `kt:{org}:ledger` into PostgreSQL in
stream order, then trims Redis below what is archived, keeping `redis_tail_entries`.

Idempotent: the table's primary key is (org, stream id) and every pass resumes after the archived
high-water mark, so a pass interrupted anywhere (before or after its commit, before the trim)
copies nothing twice and loses nothing. One archiver acts at a time per organization across
replicas: a pass runs only while holding a PostgreSQL advisory lock keyed by the org.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from redis.exceptions import ResponseError

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.ledger import journal
from keeptrusts_authz.ledger.archive_store import ArchiveStore, join_id, split_id
from keeptrusts_authz.metrics.registry import (
    LEDGER_ARCHIVE_LAG_ENTRIES,
    LEDGER_ARCHIVE_LAG_SECONDS,
    LEDGER_ARCHIVED_ENTRIES,
)
from keeptrusts_authz.store.connection import AsyncClient
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.models import LedgerEntry

log = logging.getLogger(__name__)


def archive_lock_key(org: str) -> int:
    """A stable signed 64-bit advisory-lock key per organization."""
    digest = hashlib.sha256(b"kt-archiver:" + org.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class ArchivePass:
    acted: bool  # False: another archiver holds the lock
    archived: int = 0
    trimmed: int = 0
    high_water: str | None = None
    # The archived high-water entry is gone from Redis although the trim always keeps it: Redis
    # was rolled back or lost (its entries after that point are on books PostgreSQL does not
    # hold), so nothing is copied until `keeptrusts-authz restore` rebuilds the stream.
    gap: str = ""
    pruned: int = 0  # settlement-journal rows deleted (no restore can need them)


def _entry(entry_id: str, fields: dict[str, str]) -> LedgerEntry:
    def num(name: str) -> int:
        v = fields.get(name)
        return int(v) if v else 0

    return LedgerEntry(
        id=entry_id,
        ts_ms=num("ts_ms"),
        op=fields.get("op", ""),
        wallet=fields.get("wallet", ""),
        amount=num("amount"),
        fields=dict(fields),
    )


class Archiver:
    def __init__(
        self,
        redis: AsyncClient,
        archive: ArchiveStore,
        org: str,
        *,
        tail_entries: int,
        batch: int = 5_000,
        journal_keep_ms: int | None = None,
        prune_every_seconds: float = 60.0,
    ) -> None:
        """`journal_keep_ms`: prune settlement-journal rows received that long before the
        archived high-water entry (wallets.restore.journal_keep_ms; None: no journal pruning),
        at most once per `prune_every_seconds`."""
        self._redis = redis
        self._archive = archive
        self._keys = Keys(org)
        self._org = org
        self._tail = tail_entries
        self._batch = batch
        self._journal_keep_ms = journal_keep_ms
        self._prune_every = prune_every_seconds
        self._pruned_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> ArchivePass:
        conn = await self._archive.connect()
        async with conn:
            cur = await conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (archive_lock_key(self._org),)
            )
            row = await cur.fetchone()
            if row is None or not row[0]:
                return ArchivePass(acted=False)
            try:
                return await self._copy_and_trim(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (archive_lock_key(self._org),))

    async def _copy_and_trim(self, conn: psycopg.AsyncConnection[Any]) -> ArchivePass:
        high = await self._archive.last_archived_id(self._org)
        gap = await self._continuity(high)
        if gap:
            log.error("ledger archive paused for org %s: %s", self._org, gap)
            return ArchivePass(acted=True, high_water=high, gap=gap)
        lower = f"({high}" if high else "-"
        archived = 0
        first_lag = True
        while True:
            rows = await cast(
                Awaitable[list[tuple[str, dict[str, str]]]],
                self._redis.xrange(self._keys.ledger, min=lower, max="+", count=self._batch),
            )
            if first_lag:
                first_lag = False
                await self._record_lag(rows, high)
            if not rows:
                break
            entries = [_entry(i, f) for i, f in rows]
            async with conn.transaction():
                archived += await ArchiveStore.insert(conn, self._org, entries)
            high = rows[-1][0]
            lower = f"({high}"
            if len(rows) < self._batch:
                break
        LEDGER_ARCHIVED_ENTRIES.inc(archived)
        trimmed = await self._trim(high) if high else 0
        pruned = await self._prune_journal(conn, high)
        return ArchivePass(
            acted=True, archived=archived, trimmed=trimmed, high_water=high, pruned=pruned
        )

    async def _prune_journal(self, conn: psycopg.AsyncConnection[Any], high: str | None) -> int:
        """Journal rows no restore can need any more (the settlement journal would otherwise
        grow by one row per request for ever). Only from an archived high-water mark: a pass
        that found a gap returned before this."""
        if self._journal_keep_ms is None or high is None:
            return 0
        now = time.monotonic()
        if now - self._pruned_at < self._prune_every:
            return 0
        self._pruned_at = now
        before = split_id(high)[0] - self._journal_keep_ms
        async with conn.transaction():
            return await journal.prune(conn, self._org, before)

    async def _continuity(self, high: str | None) -> str:
        """'' when Redis still holds the archived high-water entry, or trimmed it (the stream's
        max-deleted-entry-id, Redis 7, is at or past it); else what is wrong. A stream that came
        back empty or from an older snapshot has neither."""
        if high is None:
            return ""
        found = await cast(
            Awaitable[list[object]],
            self._redis.xrange(self._keys.ledger, min=high, max=high, count=1),
        )
        if found:
            return ""
        try:
            info: dict[str, Any] = await self._redis.xinfo_stream(self._keys.ledger)
        except ResponseError:  # no stream at all
            info = {}
        deleted = str(info.get("max-deleted-entry-id") or "0-0")
        if split_id(deleted) >= split_id(high):
            return ""
        return (
            f"Redis's ledger no longer holds the archived high-water entry {high}: "
            "the store was lost or rolled back (run `keeptrusts-authz restore`)"
        )

    async def _record_lag(self, first: list[tuple[str, dict[str, str]]], high: str | None) -> None:
        if not first:
            LEDGER_ARCHIVE_LAG_ENTRIES.set(0)
            LEDGER_ARCHIVE_LAG_SECONDS.set(0)
            return
        oldest_ms = split_id(first[0][0])[0]
        LEDGER_ARCHIVE_LAG_SECONDS.set(max(0.0, time.time() - oldest_ms / 1000))
        if len(first) < self._batch:
            LEDGER_ARCHIVE_LAG_ENTRIES.set(len(first))
            return
        # More than one batch behind: the exact count is the stream length minus what lies at or
        # below the high-water mark, which after trimming is at most the tail.
        total = int(await self._redis.xlen(self._keys.ledger))
        below = 0
        if high:
            below = len(
                await cast(
                    Awaitable[list[object]],
                    self._redis.xrevrange(
                        self._keys.ledger, max=high, min="-", count=self._tail + 1
                    ),
                )
            )
        LEDGER_ARCHIVE_LAG_ENTRIES.set(max(total - below, len(first)))

    async def _trim(self, high: str) -> int:
        """Drop Redis entries older than the newest `tail` archived ones (never an unarchived
        entry: MINID is at or below the archived high-water mark's successor)."""
        if self._tail == 0:
            ms, seq = split_id(high)
            minid = join_id(ms, seq + 1)
        else:
            kept = await cast(
                Awaitable[list[tuple[str, dict[str, str]]]],
                self._redis.xrevrange(self._keys.ledger, max=high, min="-", count=self._tail),
            )
            if len(kept) < self._tail:
                return 0
            minid = kept[-1][0]
        trimmed = await self._redis.xtrim(self._keys.ledger, minid=minid, approximate=False)
        return int(trimmed)

    def start(self, interval_seconds: float) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(interval_seconds))

    async def close(self) -> None:
        """Stop the loop (a pass cut short is safe: the next one resumes after what committed)."""
        task, self._task = self._task, None
        await stop_task(task)

    async def run_forever(self, interval_seconds: float) -> None:
        """Archive every `interval_seconds` until cancelled; a failing pass is logged and
        retried (the lag gauges show how far behind it falls)."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ledger archive pass failed: %s", type(exc).__name__)
            await asyncio.sleep(interval_seconds)


__all__ = ["ArchivePass", "Archiver", "archive_lock_key"]
