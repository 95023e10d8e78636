"""Batching of settlements from the access log, and the sweeper for reservations that never got one.

Settles are idempotent by reservation id, so a batch that failed half-way can simply be sent again.

Settlement journal (with `ledger.postgres_url`): each batch's charges are written to PostgreSQL's
settlement journal (one round trip) BEFORE the batch goes to Redis, so a charge whose Redis
entries die with a lost store is still known: `keeptrusts-authz restore` books what the rebuilt
books lack (wallets/restore.py). After a restore, a settle of a reservation that died with the
store answers `unknown`; the settler then books the charge itself (`WalletService.recover`,
idempotent by reservation id), but only when all of these hold, so nothing is charged twice:
- this batch journaled the charge (its first settlement: a repeated access-log entry finds its
  row already there);
- the batch never met the store regressed (a held batch is restore's to apply: it reads the
  journal after the rebuild);
- the reservation could still be open (`JournaledCharge.open_until_ms`): before then a store
  that holds its books cannot have forgotten the reservation.
A journal write that fails (PostgreSQL down, or slower than the journal's timeout) never blocks
settlement: the batch is settled in Redis anyway (and the next `JOURNAL_RETRY_SECONDS` of batches
skip the journal instead of each waiting out its timeout), counted in
`keeptrusts_settlement_journal_failures_total` and logged; those charges are covered once the
archiver has copied them, as without a journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.errors import StoreRegressed, StoreUnavailable
from keeptrusts_authz.gateway.reconcile import Release
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.wallets.models import JournaledCharge, SettleRequest, SettleResult
from keeptrusts_authz.wallets.ports import SettlementJournal
from keeptrusts_authz.wallets.service import WalletService

log = logging.getLogger(__name__)

# Told the wallets that a batch charged (e.g. AlertEngine.after_settle). It must only schedule
# work: it is awaited on the settler's task, and its failures are logged and ignored.
AfterSettle = Callable[[Iterable[str]], Awaitable[object]]


#: After a failed journal write, batches skip the journal (counted as failures) this long.
JOURNAL_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class _Pending:
    item: SettleRequest | Release
    ended_at: float | None  # wall-clock end of the request, for the lag histogram
    charge: JournaledCharge | None = None  # what the settlement journal keeps of a settle


class Settler:
    """Collects settlements and writes them in pipelined batches (one round trip per batch)."""

    def __init__(
        self,
        wallets: WalletService,
        *,
        max_batch: int = 256,
        max_delay: float = 0.01,
        max_queue: int = 100_000,
        after_settle: AfterSettle | None = None,
        journal: SettlementJournal | None = None,
    ) -> None:
        """`after_settle(wallet_ids)` is called after each written batch with the wallets it
        charged; `journal`: the settlement journal (module docstring), None without
        PostgreSQL."""
        self._wallets = wallets
        self._journal = journal
        self._journal_retry_at = 0.0
        self._journal_logged_at = -JOURNAL_RETRY_SECONDS
        self._journal_unlogged = 0
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._after_settle = after_settle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="keeptrusts-settler")

    def submit(
        self,
        item: SettleRequest | Release,
        ended_at: float | None = None,
        charge: JournaledCharge | None = None,
    ) -> None:
        try:
            self._queue.put_nowait(_Pending(item, ended_at, charge))
        except asyncio.QueueFull:
            # The sweeper settles it at its estimate after the reservation TTL: nothing leaks.
            m.SETTLEMENTS.labels("dropped_queue_full").inc()
            return
        m.SETTLE_QUEUE.set(self._queue.qsize())

    async def _next_batch(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self._max_delay
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
        return batch

    async def _journal_batch(self, batch: list[_Pending]) -> set[str]:
        """Journal the batch's charges; the reservation ids journaled now (none on failure).
        After a failure the journal is skipped for `JOURNAL_RETRY_SECONDS` (each batch would
        otherwise wait out the journal's timeout on a PostgreSQL that does not answer)."""
        charges = [p.charge for p in batch if p.charge is not None]
        if self._journal is None or not charges:
            return set()
        now = time.monotonic()
        if now < self._journal_retry_at:
            self._journal_failed(len(charges), None)
            return set()
        try:
            fresh = await self._journal.record(self._wallets.org_id, charges)
        except Exception as exc:  # PostgreSQL down or slow: settle in Redis all the same
            self._journal_retry_at = time.monotonic() + JOURNAL_RETRY_SECONDS
            self._journal_failed(len(charges), exc)
            return set()
        m.SETTLEMENT_JOURNAL_ROWS.inc(len(fresh))
        return fresh

    def _journal_failed(self, n: int, exc: Exception | None) -> None:
        m.SETTLEMENT_JOURNAL_FAILURES.inc(n)
        self._journal_unlogged += n
        now = time.monotonic()
        if exc is not None and now - self._journal_logged_at >= JOURNAL_RETRY_SECONDS:
            self._journal_logged_at = now
            log.warning(
                "settlement journal unavailable (%s: %s); %d charges settled in Redis without "
                "it since the last warning (covered once archived)",
                type(exc).__name__,
                str(exc)[:200],
                self._journal_unlogged,
            )
            self._journal_unlogged = 0

    async def _write(self, batch: list[_Pending]) -> None:
        fresh = await self._journal_batch(batch)
        regressed = False
        backoff = 0.05
        while True:
            try:
                results = await self._wallets.settle_batch([p.item for p in batch])
                break
            except StoreUnavailable:
                m.STORE_ERRORS.labels("settle").inc()
                log.warning("wallet store unreachable; retrying %d settlements", len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except StoreRegressed:
                # The store lost its books: keep these settlements (never drop a charge) until
                # `keeptrusts-authz restore` brings their reservations back.
                m.STORE_ERRORS.labels("settle_regressed").inc()
                log.warning("wallet store regressed; holding %d settlements", len(batch))
                regressed = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        now = time.time()
        if fresh and not regressed:
            results = await self._recover(batch, results, fresh, int(now * 1000))
        charged: set[str] = set()
        for pending, result in zip(batch, results, strict=True):
            m.SETTLEMENTS.labels(result.outcome).inc()
            if pending.ended_at is not None:
                m.RECONCILIATION_LAG.observe(max(0.0, now - pending.ended_at))
            if result.outcome in ("settled", "corrected", "recovered") and result.wallet:
                charged.add(result.wallet)
        if charged and self._after_settle is not None:
            try:
                await self._after_settle(charged)
            except Exception:  # alerts must never fail (or retry) a written batch
                log.exception("after-settle hook failed")

    async def _recover(
        self, batch: list[_Pending], results: list[SettleResult], fresh: set[str], now_ms: int
    ) -> list[SettleResult]:
        """Book the journaled charges the store lost (module docstring: when that is believed)."""
        out = list(results)
        for i, (pending, result) in enumerate(zip(batch, results, strict=True)):
            charge = pending.charge
            if (
                result.outcome == "unknown"
                and charge is not None
                and charge.reservation_id in fresh
                and now_ms <= charge.open_until_ms
            ):
                out[i] = await self._wallets.recover(charge)
        return out

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._write(batch)
            except Exception:
                log.exception(
                    "settling a batch of %d failed; the sweeper will expire them", len(batch)
                )
            finally:
                for _ in batch:
                    self._queue.task_done()
                m.SETTLE_QUEUE.set(self._queue.qsize())

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 10.0) -> None:
        await self.flush(timeout)
        task, self._task = self._task, None
        await stop_task(task)


class Sweeper:
    """Expires overdue reservations at their estimate. Safe on every replica at once: the expire
    script closes each reservation exactly once."""

    def __init__(self, wallets: WalletService, interval: float, batch: int = 500) -> None:
        self._wallets = wallets
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="keeptrusts-sweeper")

    async def sweep_once(self) -> int:
        total = 0
        while True:
            expired = await self._wallets.expire_due(self._batch)
            total += len(expired)
            m.EXPIRED_RESERVATIONS.inc(len(expired))
            if len(expired) < self._batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except StoreUnavailable:
                m.STORE_ERRORS.labels("expire").inc()
            except Exception:
                log.exception("sweeper pass failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
