"""Domain types of the wallet layer: plain frozen dataclasses, no Redis types.

Money is integer micros everywhere (keeptrusts_authz.money converts at the edges).
Wallet ids: `org`, `team:<team_id>`, `user:<user_id>`; the scope is the part before `:`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from keeptrusts_authz.errors import InvalidInput

Scope = Literal["org", "team", "user"]
Status = Literal["healthy", "low", "depleted"]
Policy = Literal["block", "warn", "hold", "showback"]
ReserveOutcome = Literal["reserved", "overdraft", "blocked", "hold", "duplicate", "foreign_user"]
SettleOutcome = Literal[
    "settled", "corrected", "released", "already_closed", "unknown", "recovered"
]

_TEAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,127}$")
RESERVATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")

#: Field of a `settle` ledger entry (value "1") booked from the settlement journal for a
#: reservation the store lost: no reserve entry precedes it and its `reserved` is 0.
RECOVERED_FIELD = "recovered"

#: The integer fields of a wallet hash, as the Lua scripts write them.
WALLET_FIELDS = ("balance", "reserved", "allocated_total", "spent_total")

#: Money ever put into a wallet (credits, allocations and transfers in), kept by the same Lua
#: scripts; a reclaim or a transfer out never lowers it, so spent_total / funded_total rises only
#: by spending. Not part of the balance equation (the audit replays WALLET_FIELDS); the spend
#: threshold alerts divide by it. Wallets funded before it existed fall back to allocated_total.
FUNDED_FIELD = "funded_total"

#: Largest single amount accepted (1e9 currency units): keeps every sum exact in Lua's doubles.
MAX_AMOUNT_MICROS = 10**15
#: Largest magnitude a wallet balance or total may reach (2^53 - 1 micros, about 9.007 billion
#: units): Lua numbers are doubles, exact only below 2^53. A move that would pass it is refused
#: before anything is written (store/lua/prelude.lua `over_bound`, the memory twin alike).
MAX_WALLET_MICROS = 2**53 - 1


def parse_wallet_id(wallet_id: str) -> tuple[Scope, str]:
    """Split and validate a wallet id into (scope, owner); raises InvalidInput."""
    if wallet_id == "org":
        return "org", ""
    scope, sep, owner = wallet_id.partition(":")
    if sep and scope == "team" and _TEAM_ID.match(owner):
        return "team", owner
    if sep and scope == "user" and _USER_ID.match(owner):
        return "user", owner
    raise InvalidInput(
        "wallet id must be 'org', 'team:<team_id>' or 'user:<user_id>'",
        {"wallet": wallet_id[:140]},
    )


def wallet_status(balance: int, allocated_total: int, low_balance_ratio: Decimal) -> Status:
    """depleted if balance <= 0; low if balance < ratio * allocated_total; else healthy."""
    if balance <= 0:
        return "depleted"
    if Decimal(balance) < low_balance_ratio * Decimal(allocated_total):
        return "low"
    return "healthy"


@dataclass(frozen=True)
class Wallet:
    id: str
    scope: Scope
    owner: str
    balance: int
    reserved: int
    allocated_total: int
    spent_total: int
    status: Status

    @classmethod
    def build(
        cls,
        wallet_id: str,
        *,
        balance: int,
        reserved: int,
        allocated_total: int,
        spent_total: int,
        low_balance_ratio: Decimal,
        org_id: str = "",
    ) -> Wallet:
        scope, owner = parse_wallet_id(wallet_id)
        return cls(
            id=wallet_id,
            scope=scope,
            owner=owner or org_id,
            balance=balance,
            reserved=reserved,
            allocated_total=allocated_total,
            spent_total=spent_total,
            status=wallet_status(balance, allocated_total, low_balance_ratio),
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger stream entry; `fields` holds every field as stored (all strings)."""

    id: str
    ts_ms: int
    op: str
    wallet: str
    amount: int
    fields: dict[str, str] = field(default_factory=dict)


# Actor of a reservation an approved cost ticket funded: "ticket:<ticket id>" (wallets/holds.py
# writes it on the reserve entry; reports/chargeback.py reads it for `ticket_funded_spent`).
TICKET_ACTOR = "ticket:"


@dataclass(frozen=True)
class ReserveRequest:
    reservation_id: str
    candidates: tuple[str, ...]
    amount: int
    policy: Policy
    overdraft_wallet: str | None
    ttl_ms: int
    team: str
    group: str
    user: str
    model: str


@dataclass(frozen=True)
class ReserveResult:
    outcome: ReserveOutcome
    wallet: str | None
    amount: int
    seen: dict[str, int]
    #: foreign_user: the team the named user's wallet belongs to ('' = none); never shown to
    #: the caller (it names another team).
    owner_team: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome in ("reserved", "overdraft", "duplicate")


@dataclass(frozen=True)
class SettleRequest:
    reservation_id: str
    cost: int
    estimated: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    model: str = ""
    # Model label of the usage counters: the priced model name from the price table (or `other`);
    # "" = the reservation's model, which the admission stores as the priced name.
    label_model: str = ""


@dataclass(frozen=True)
class JournaledCharge:
    """One settlement as the settlement journal keeps it (PostgreSQL, outside the wallet store):
    everything its charge needs when the store lost the reservation. Written by the settler
    before the settle goes to the store; `model` and `label_model` are resolved (never "").

    `open_until_ms`: until when the reservation could still be open in the store (admission +
    reservation TTL, minus a clock margin). Only before then may an `unknown` answer be taken for
    a reservation the store lost (after it, the store may have expired and forgotten it)."""

    reservation_id: str
    wallet: str
    team: str
    group: str
    user: str
    model: str
    label_model: str
    cost: int
    estimated: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    admitted_ms: int = 0
    ended_ms: int = 0
    open_until_ms: int = 0
    received_ms: int = 0

    def settle_request(self) -> SettleRequest:
        """The settle of this charge, for a reservation the store still holds open."""
        return SettleRequest(
            self.reservation_id,
            self.cost,
            estimated=self.estimated,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            model=self.model,
            label_model=self.label_model,
        )


@dataclass(frozen=True)
class ReleaseRequest:
    reservation_id: str
    reason: str = ""


class ReleaseLike(Protocol):
    """Names a reservation to release at no cost (ReleaseRequest, the gateway's Release)."""

    @property
    def reservation_id(self) -> str: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class SettleResult:
    outcome: SettleOutcome
    wallet: str | None
    reserved: int
    cost: int


@dataclass(frozen=True)
class ExpiredReservation:
    reservation_id: str
    wallet: str
    amount: int


@dataclass(frozen=True)
class Reservation:
    id: str
    wallet: str
    amount: int
    state: Literal["open", "settled", "released", "expired"]
    team: str
    group: str
    user: str
    model: str
    deadline_ms: int
    cost: int | None
    overdraft: bool
    estimated: bool


@dataclass(frozen=True)
class OpResult:
    """Result of an admin move (credit, allocate, reclaim, transfer).

    `balances` maps each wallet the move touched to its balance right after the move; for a
    replay (`replayed=True`) it is the result of the first call and nothing moved this time.
    """

    op: str
    entry_id: str
    balances: dict[str, int]
    replayed: bool


@dataclass(frozen=True)
class TicketRecord:
    id: str
    status: str
    team: str
    group: str
    model: str
    user: str
    amount: int
    created_ms: int
    waiting: bool
    decided_by: str
    decided_ms: int
    reason: str
    funding: str
    candidates: tuple[str, ...]
    overdraft: str


@dataclass(frozen=True)
class TopUpRecord:
    """A team lead's request for more budget (wallets.topups): pending until billing approves
    (allocated from the org pool to `wallet` in the same script) or denies it."""

    id: str
    status: str
    team: str
    wallet: str
    amount: int
    description: str
    requested_by: str
    created_ms: int
    decided_by: str
    decided_ms: int
    reason: str
    entry_id: str


@dataclass(frozen=True)
class LedgerCheckpoint:
    """Every wallet and open reservation of one org as replayed up to and including `upto` (an
    archived stream id), kept with the archived ledger so an audit replays only what follows."""

    org: str
    upto: str
    entries: int
    wallets: dict[str, dict[str, int]]
    open_reservations: dict[str, tuple[str, int]]


@dataclass(frozen=True)
class AuditSnapshot:
    """Wallet records, the last ledger id and the deadline index, read as of one instant."""

    wallets: dict[str, dict[str, int]]
    last_entry_id: str | None
    deadlines: dict[str, int]


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    entries: int
    mismatches: list[str]
    wallets: int = 0
    open_reservations: int = 0


@dataclass(frozen=True)
class StoreMarker:
    """What the store says about its own continuity: the epoch marker (None: missing), the last
    id the ledger stream ever generated ('0-0': none), and whether any wallet or entry exists."""

    epoch: str | None
    origin: str
    hwm_floor: str
    last_id: str
    has_data: bool
    # The probed entry (a ledger id this process or the archive saw) is gone although the stream
    # still holds older entries: the store was rolled back, even if new writes have since moved
    # the stream's last id past it (a stale snapshot serving writes before the next check).
    probe_missing: bool = False


#: How long settle.lua keeps a day's burn hash (8 days + 1 h); a restore writes the same.
BURN_TTL_MS = 694_800_000


@dataclass
class RestorePlan:
    """Everything the store writes for a restore (replacing what it holds for the org)."""

    org: str
    high_water: str  # the archived high-water mark (the new marker's hwm_floor); "0-0": none
    wallets: dict[str, dict[str, int]] = field(default_factory=dict)
    created_ms: dict[str, int] = field(default_factory=dict)
    user_teams: dict[str, str] = field(default_factory=dict)  # user wallet -> its team (`team`)
    reservations: dict[str, dict[str, str]] = field(default_factory=dict)  # open ones: hash
    deadlines: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    burn: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> wallet -> micros
    period_state: dict[str, dict[str, str]] = field(default_factory=dict)
    tail: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (id, fields) in order
    entries: int = 0  # ledger entries replayed
    archived_entries: int = 0
    carried: int = 0  # store entries after the high-water mark, kept
    rewritten: int = 0  # of those, with a corrected balance_after
    dropped: list[str] = field(default_factory=list)  # why each dropped entry was dropped
    errors: list[str] = field(default_factory=list)  # the archive itself does not add up
    # Not written by the store: what the settlement journal is matched against after the write.
    closed: set[str] = field(default_factory=set)  # reservations closed in the rebuilt books
    high_water_ts_ms: int = 0  # ts_ms of the archived high-water entry (0: none)


def new_epoch_id() -> str:
    """A fresh store epoch id (the marker `credit` or an init/restore writes)."""
    return "e_" + uuid.uuid4().hex[:20]


__all__ = [
    "BURN_TTL_MS",
    "FUNDED_FIELD",
    "IDEMPOTENCY_KEY",
    "MAX_AMOUNT_MICROS",
    "MAX_WALLET_MICROS",
    "RECOVERED_FIELD",
    "RESERVATION_ID",
    "TICKET_ACTOR",
    "WALLET_FIELDS",
    "AuditReport",
    "AuditSnapshot",
    "ExpiredReservation",
    "JournaledCharge",
    "LedgerCheckpoint",
    "LedgerEntry",
    "OpResult",
    "Policy",
    "ReleaseLike",
    "ReleaseRequest",
    "Reservation",
    "ReserveOutcome",
    "ReserveRequest",
    "ReserveResult",
    "RestorePlan",
    "Scope",
    "SettleOutcome",
    "SettleRequest",
    "SettleResult",
    "Status",
    "StoreMarker",
    "TicketRecord",
    "TopUpRecord",
    "Wallet",
    "new_epoch_id",
    "parse_wallet_id",
    "wallet_status",
]
