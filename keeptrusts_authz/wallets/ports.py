"""The storage seam the wallet domain owns: what `WalletService` and the holds need from a store.

`store.redis_store.RedisWalletStore` implements `WalletStore` with Lua scripts and
`wallets.memory_store.MemoryWalletStore` with a lock, for fast tests; the domain never imports
either. Every method is atomic (one script, or one critical section). A store raises
`StoreRefused` for an admin move it refuses and `keeptrusts_authz.errors.StoreError`
(`StoreUnavailable` when transient) when it cannot answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from keeptrusts_authz.wallets.models import (
    AuditSnapshot,
    ExpiredReservation,
    JournaledCharge,
    LedgerCheckpoint,
    LedgerEntry,
    OpResult,
    ReleaseLike,
    Reservation,
    ReserveRequest,
    ReserveResult,
    RestorePlan,
    SettleRequest,
    SettleResult,
    StoreMarker,
    TicketRecord,
    TopUpRecord,
)


class StoreRefused(Exception):
    """A store refused an admin move; `reason` is unknown_wallet, insufficient, conflict or
    bound (`field` of `wallet` would pass MAX_WALLET_MICROS) or wrong_team (a user wallet of
    another team, or of none: `team` is the one it belongs to)."""

    def __init__(
        self, reason: str, wallet: str = "", available: int = 0, team: str = "", *, field: str = ""
    ) -> None:
        super().__init__(f"{reason}: {wallet}" if wallet else reason)
        self.reason = reason
        self.wallet = wallet
        self.available = available
        self.field = field
        self.team = team


class WalletStore(Protocol):
    """Wallets, reservations and the ledger of ONE organization."""

    org_id: str

    async def credit(
        self,
        amount: int,
        *,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
    ) -> OpResult: ...

    async def allocate(
        self,
        target: str,
        amount: int,
        *,
        create: bool,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        team: str = "",
    ) -> OpResult:
        """`team`: a user target must belong to it (a user wallet without a team adopts it)."""
        ...

    async def reclaim(
        self,
        source: str,
        amount: int,
        *,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        source_team: str = "",
    ) -> OpResult:
        """`source_team`: a user source must belong to it ('' = no constraint), checked in the
        same script as the move."""
        ...

    async def transfer(
        self,
        source: str,
        destination: str,
        amount: int,
        *,
        create: bool,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        source_team: str = "",
        team: str = "",
        adopt: bool = True,
    ) -> OpResult:
        """`source_team`: a user source must belong to it ('' = no constraint); `team`: a user
        destination must belong to it (one created here takes it; an existing one without a
        team adopts it only when `adopt`, billing's moves; a team lead's pass False)."""
        ...

    async def reserve(
        self, req: ReserveRequest, *, actor: str = "gateway", epoch: str = ""
    ) -> ReserveResult:
        """`epoch`: the marker id the caller saw ('' = none yet). A missing or different marker
        raises StoreRegressed and reserves nothing; a reserve never creates a wallet from
        nothing (warn needs the overdraft wallet; showback opens one only in an armed store)."""
        ...

    async def marker(self, probe: str | None = None) -> StoreMarker:
        """The epoch marker, the ledger's last generated id and whether any data exists; with
        `probe`, whether that entry is missing while the stream still holds older ones."""
        ...

    async def arm(self, *, origin: str, hwm_floor: str = "0-0", replace: bool = False) -> str:
        """Write the epoch marker (new id); without `replace` an existing one is kept."""
        ...

    async def restore_books(self, plan: RestorePlan) -> str:
        """Replace the org's books by a restore plan (wallets/restore.py) and re-arm the store
        with a new epoch marker of origin `restore`, atomically; returns the new epoch id."""
        ...

    async def settle(self, req: SettleRequest, *, actor: str = "gateway") -> SettleResult: ...

    async def release(
        self, req: ReleaseLike, *, actor: str = "gateway", abandoned: bool = False
    ) -> SettleResult:
        """`abandoned`: the compensating release of a Check that gave up; a reservation a
        retried Check adopted (reserve's `duplicate`) is kept and answered already_closed."""
        ...

    async def settle_batch(
        self, items: Sequence[SettleRequest | ReleaseLike], *, actor: str = "gateway"
    ) -> list[SettleResult]: ...

    async def recover(self, charge: JournaledCharge, *, actor: str = "gateway") -> SettleResult:
        """Book a journaled charge whose reservation the store does not know (it died with a
        lost store): a closed reservation record and one `settle` ledger entry marked
        `recovered` (reserved 0), the usage counters and burn as a settle writes them. Outcome
        `recovered`; `already_closed`/`corrected` (the settle rule) when the reservation is known;
        `unknown` when a record of the id exists without a wallet (a release tombstone) or the
        wallet does not exist. Idempotent by reservation id."""
        ...

    async def expire(self, limit: int, *, actor: str = "sweeper") -> list[ExpiredReservation]: ...

    async def wallet(self, wallet_id: str) -> dict[str, int] | None: ...

    async def wallets(self) -> dict[str, dict[str, int]]: ...

    async def wallet_team(self, wallet_id: str) -> str:
        """The team a user wallet belongs to ('' when it has none or does not exist)."""
        ...

    async def wallet_teams(self) -> dict[str, str]:
        """User wallet id -> the team it belongs to ('' when it has none)."""
        ...

    async def reservation(self, reservation_id: str) -> Reservation | None: ...

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

    async def audit_snapshot(self, attempts: int = 50) -> AuditSnapshot: ...

    async def denial_counters(self, month: str | None = None) -> dict[str, int]: ...

    async def burn_by_day(self, days: Sequence[str]) -> dict[str, dict[str, int]]:
        """UTC day (YYYY-MM-DD) -> wallet id -> micros spent that day (settle + expire)."""
        ...

    async def close(self) -> None: ...


class TicketNotFound(Exception):
    pass


class TicketConflict(Exception):
    def __init__(self, current: str) -> None:
        super().__init__(f"ticket is {current}")
        self.current = current


class EventWatcher(Protocol):
    """Wakes waiters when a message (`funds:<wallet>`, `ticket:<id>`) is published."""

    async def ready(self, timeout: float = 2.0) -> bool: ...

    def watch(self, messages: Iterable[str]) -> AbstractContextManager[asyncio.Event]: ...


class TicketStore(Protocol):
    """Cost tickets of ONE organization (the `hold` policy) and its event channel."""

    @property
    def events(self) -> EventWatcher: ...

    async def open(
        self,
        *,
        team: str,
        group: str,
        model: str,
        user: str,
        amount: int,
        candidates: Iterable[str],
        overdraft: str,
    ) -> TicketRecord: ...

    async def get(self, ticket_id: str) -> TicketRecord | None: ...

    async def list(self, limit: int = 500) -> list[TicketRecord]: ...

    async def transition(
        self, ticket_id: str, allowed: Iterable[str], new: str, *, publish: bool, **fields: str
    ) -> TicketRecord: ...

    async def set_waiting(self, ticket_id: str, waiting: bool) -> None: ...


class TopUpStore(Protocol):
    """Top-up requests of ONE organization (team leads ask, billing decides)."""

    async def create(
        self, *, team: str, wallet: str, amount: int, description: str, requested_by: str
    ) -> TopUpRecord: ...

    async def get(self, topup_id: str) -> TopUpRecord | None: ...

    async def list(self) -> list[TopUpRecord]:
        """Every stored top-up, newest first (never silently truncated)."""
        ...

    async def approve(
        self, topup_id: str, wallet: str, *, actor: str, reason: str
    ) -> tuple[TopUpRecord, OpResult]:
        """Allocate the top-up from the org pool and mark it approved, atomically. Raises
        TicketNotFound, TicketConflict (not pending) or StoreRefused('insufficient')."""
        ...

    async def deny(self, topup_id: str, *, actor: str, reason: str) -> TopUpRecord: ...


__all__ = [
    "EventWatcher",
    "SettlementJournal",
    "StoreRefused",
    "TicketConflict",
    "TicketNotFound",
    "TicketStore",
    "TopUpStore",
    "WalletStore",
]


class SettlementJournal(Protocol):
    """The write-ahead settlement journal (PostgreSQL, `ledger.journal.PostgresJournal`): every
    charge the settler sends to the store, written before it, outside the store."""

    async def record(self, org: str, charges: Sequence[JournaledCharge]) -> set[str]:
        """Append `charges` in one round trip; returns the reservation ids recorded now (an id
        already journaled is kept as it was and not returned). Raises on any failure."""
        ...

    async def since(self, org: str, received_from_ms: int) -> list[JournaledCharge]:
        """The org's journaled charges received at or after `received_from_ms`."""
        ...


class LedgerArchive(Protocol):
    """The ledger's system of record (PostgreSQL, `ledger.archive_store.ArchiveStore`): archived
    entries in stream order and the audit's checkpoints."""

    async def last_archived_id(self, org: str) -> str | None: ...

    def iter_entries(
        self, org: str, after: str | None = None, upto: str | None = None
    ) -> AsyncIterator[LedgerEntry]: ...

    async def last_snapshot(self, org: str) -> LedgerCheckpoint | None: ...

    async def save_snapshot(self, snap: LedgerCheckpoint) -> None: ...
