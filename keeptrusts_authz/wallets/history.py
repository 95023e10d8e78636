"""Ledger history when PostgreSQL is the system of record: the archive merged with the Redis
tail, so the Redis stream can be trimmed to a small tail without listings, the transactions API
or the reports losing anything.

Both sources are complete for their own range (the archive up to its high-water mark, Redis from
its trimmed start on) and overlap on the kept tail; entries are merged by stream id, each id once.
Without an archive the store itself is the history (`WalletService.history`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from keeptrusts_authz.wallets.models import LedgerEntry
from keeptrusts_authz.wallets.ports import WalletStore


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or "0")


@runtime_checkable
class ArchivedHistory(Protocol):
    """The archive's reads the history needs (ledger.archive_store.ArchiveStore)."""

    async def page(
        self, org: str, count: int, *, before: str | None = None, wallet: str | None = None
    ) -> list[LedgerEntry]: ...

    def iter_entries(
        self, org: str, after: str | None = None, upto: str | None = None
    ) -> AsyncIterator[LedgerEntry]: ...


class LedgerHistory(Protocol):
    """Where the ledger's history is read from: a WalletStore (Redis only) or MergedHistory."""

    async def ledger(
        self,
        count: int,
        *,
        before: str | None = None,
        wallet: str | None = None,
        scan_limit: int = 100_000,
    ) -> list[LedgerEntry]: ...

    def iter_ledger(
        self, upto: str | None = None, batch: int = 5000
    ) -> AsyncIterator[LedgerEntry]: ...

    async def denial_counters(self, month: str | None = None) -> dict[str, int]: ...


class MergedHistory:
    """PostgreSQL's archived ledger + the Redis tail, one ordered history without duplicates."""

    def __init__(self, store: WalletStore, archive: ArchivedHistory) -> None:
        self._store = store
        self._archive = archive
        self._org = store.org_id

    async def ledger(
        self,
        count: int,
        *,
        before: str | None = None,
        wallet: str | None = None,
        scan_limit: int = 100_000,
    ) -> list[LedgerEntry]:
        """Newest first, up to `count` older than `before`: the newest `count` of each source
        contain the newest `count` of their union."""
        recent = await self._store.ledger(
            count, before=before, wallet=wallet, scan_limit=scan_limit
        )
        archived = await self._archive.page(self._org, count, before=before, wallet=wallet)
        merged: dict[str, LedgerEntry] = {e.id: e for e in archived}
        merged.update((e.id, e) for e in recent)
        return sorted(merged.values(), key=lambda e: _key(e.id), reverse=True)[:count]

    async def iter_ledger(
        self, upto: str | None = None, batch: int = 5000
    ) -> AsyncIterator[LedgerEntry]:
        """Oldest first: the archive, then the Redis entries after the last archived one."""
        last: tuple[int, int] = (-1, -1)
        async for e in self._archive.iter_entries(self._org, upto=upto):
            last = _key(e.id)
            yield e
        async for e in self._store.iter_ledger(upto=upto, batch=batch):
            if _key(e.id) > last:
                yield e

    async def denial_counters(self, month: str | None = None) -> dict[str, int]:
        return await self._store.denial_counters(month)


__all__ = ["ArchivedHistory", "LedgerHistory", "MergedHistory"]
