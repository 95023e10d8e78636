"""Store-loss detection: is the Redis this process talks to still holding the books it saw?

Three witnesses, cheapest first:
- the reserve script compares the org's epoch marker with the epoch this process saw, in the
  same EVALSHA as the reservation (a store that came back empty, or was re-armed by a credit on
  top of nothing, answers `regressed` and reserves nothing);
- `check()` (at start, every few seconds and after a reconnect) compares the ledger stream's last
  generated id with the highest id this process has seen (a rollback to an older snapshot keeps
  the marker but moves the stream back);
- with an archive (PostgreSQL), the archived high-water mark: a ledger that ends before what was
  archived was rolled back, and a missing marker with archived history is a lost store even
  across a restart of this process.

Once regressed, the process stays regressed until the marker is re-armed by `restore`
(origin `restore`): a marker written by anything else never clears it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.errors import StoreRegressed, StoreUnavailable
from keeptrusts_authz.wallets.models import StoreMarker
from keeptrusts_authz.wallets.ports import WalletStore

log = logging.getLogger(__name__)


class ArchiveWatermark(Protocol):
    """The last ledger stream id safely archived for an org (None: nothing archived)."""

    async def last_archived_id(self, org: str) -> str | None: ...


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """`ms-seq` as a sortable pair ('0-0' for none)."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


@dataclass(frozen=True)
class Integrity:
    ok: bool
    reason: str = ""
    epoch: str | None = None


class StoreIntegrity:
    """Remembers the epoch and ledger high-water mark this process saw; decides regressed."""

    def __init__(
        self,
        store: WalletStore,
        archive: ArchiveWatermark | None = None,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        """`on_change(org, regressed)`: told after every verdict (the metric lives there)."""
        self._store = store
        self._on_change = on_change
        self._archive = archive
        self._epoch: str | None = None
        self._high_water = "0-0"
        self._regressed: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def epoch(self) -> str:
        """The epoch the reserve script must find ('' until one is known)."""
        return self._epoch or ""

    @property
    def regressed(self) -> str | None:
        """Why the store is considered regressed, or None."""
        return self._regressed

    def refuse(self) -> None:
        """Raise StoreRegressed when the store is known to be regressed (before any I/O)."""
        if self._regressed is not None:
            raise StoreRegressed(
                f"the wallet store lost its books ({self._regressed}); Checks are refused until "
                "`keeptrusts-authz restore`",
                {"reason": self._regressed},
            )

    def mark_regressed(self, reason: str) -> None:
        if self._regressed is None:
            log.error("wallet store regressed for org %s: %s", self._store.org_id, reason)
        self._regressed = reason
        self._tell(True)

    def _tell(self, regressed: bool) -> None:
        if self._on_change is not None:
            self._on_change(self._store.org_id, regressed)

    async def _archived(self) -> str | None:
        if self._archive is None:
            return None
        try:
            return await self._archive.last_archived_id(self._store.org_id)
        except Exception as exc:  # the archive down must not stop Checks; Redis is still watched
            log.warning("archive high-water mark unavailable: %s", exc)
            return None

    async def check(self, *, arm: bool = True) -> Integrity:
        """Look at the store once; may raise StoreUnavailable (then nothing is decided).
        `arm=False` (the audit): never write a marker; a missing one with data is a gap."""
        archived = await self._archived()
        probe = self._high_water
        if archived is not None and stream_id_key(archived) > stream_id_key(probe):
            probe = archived
        marker = await self._store.marker(probe if probe != "0-0" else None)
        verdict = self._judge(marker, archived, probe)
        if verdict.ok and verdict.epoch is None and not arm:
            if marker.has_data:
                return Integrity(False, "epoch marker missing while wallets or ledger exist")
            return verdict
        if verdict.ok and verdict.epoch is None:
            # A new org (nothing stored, nothing archived, no epoch seen) or wallets from before
            # markers existed: arm the store now, so that losing it from here on is detected.
            verdict = Integrity(True, epoch=await self._store.arm(origin="init"))
        if verdict.ok:
            if self._regressed is not None:
                log.warning("wallet store re-armed for org %s", self._store.org_id)
            if marker.origin == "restore" and marker.epoch != self._epoch:
                # Restored books: the stream was rebuilt; what this process saw before is moot.
                self._high_water = "0-0"
            self._regressed = None
            self._epoch = verdict.epoch
            if stream_id_key(marker.last_id) > stream_id_key(self._high_water):
                self._high_water = marker.last_id
            self._tell(False)
        else:
            self.mark_regressed(verdict.reason)
        return verdict

    def _judge(self, marker: StoreMarker, archived: str | None, probe: str = "0-0") -> Integrity:
        reached = max(stream_id_key(marker.last_id), stream_id_key(marker.hwm_floor))
        if marker.epoch is None:
            if self._epoch is not None:
                return Integrity(False, f"epoch marker missing (was {self._epoch})")
            if archived is not None and stream_id_key(archived) > (0, 0):
                return Integrity(False, f"epoch marker missing; archive holds ledger to {archived}")
            return Integrity(True, epoch=None)
        restored = marker.origin == "restore"
        if self._epoch is not None and marker.epoch != self._epoch and not restored:
            return Integrity(False, f"epoch marker replaced ({self._epoch} -> {marker.epoch})")
        if self._regressed is not None and not (restored and marker.epoch != self._epoch):
            return Integrity(False, self._regressed)
        fresh_restore = restored and marker.epoch != self._epoch
        if marker.probe_missing and not fresh_restore:
            # Writes after a rollback move the last id on; the entry seen before is still gone.
            return Integrity(
                False,
                f"ledger rolled back: entry {probe} is gone (stream now ends at {marker.last_id})",
            )
        if not restored and reached < stream_id_key(self._high_water):
            return Integrity(
                False, f"ledger rolled back: ends at {marker.last_id}, was {self._high_water}"
            )
        if archived is not None and reached < stream_id_key(archived):
            return Integrity(
                False, f"ledger rolled back: ends at {marker.last_id}, archive holds {archived}"
            )
        return Integrity(True, epoch=marker.epoch)

    async def check_quietly(self) -> None:
        """`check()`, except that an unreachable store decides nothing (the next round will)."""
        try:
            await self.check()
        except StoreUnavailable as exc:
            log.warning("store continuity check skipped: %s", exc)

    def start(self, interval_seconds: float = 2.0) -> None:
        """Re-check every `interval_seconds` on the running loop: after a reconnect to a store
        that came back empty or older, Checks answer 503 within one interval."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(interval_seconds), name="keeptrusts-store-integrity"
            )

    async def _loop(self, interval_seconds: float) -> None:
        # Never ends but by cancellation: a watch that died on one odd reply (a corrupt marker,
        # a bug) would leave store-loss detection off for the rest of the process, silently.
        logged_at = float("-inf")
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.check_quietly()
            except Exception:
                now = time.monotonic()
                if now - logged_at >= 60.0:
                    logged_at = now
                    log.exception("store continuity check failed for org %s", self._store.org_id)

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


__all__ = ["ArchiveWatermark", "Integrity", "StoreIntegrity", "stream_id_key"]
