"""Restore: rebuild an organization's books in the wallet store from the ledger of record.

The plan is built here (domain); the store writes it in one atomic step
(`WalletStore.restore_books`), re-armed with a new epoch marker of origin `restore` whose
`hwm_floor` is the archived high-water mark.

What is rebuilt, all from ledger entries (the archive from genesis, then the store's entries
after the archived high-water mark):
- every wallet's balance, reserved, allocated_total, spent_total (the audit's replay rule,
  `wallets.audit.LedgerReplay`), funded_total (credits, allocations and transfers in),
  created_ms (its first entry) and, for a user wallet, its `team` (the `user_team` of the
  allocate/transfer entries);
- the usage counters (spend/requests/tokens by team, group and model label) and the daily burn
  of the last 8 UTC days, as settle.lua / expire.lua write them;
- each wallet's budget period state (the last `period_rollover`), so a boundary already applied
  is never applied twice;
- the ledger stream's tail: the newest archived entries with their original ids (so listings and
  the audit see continuity), then the entries that were in the store but not yet archived.

Reservations open at loss time (reserved in the ledger, never closed): restored OPEN, with a
deadline of restore time + `enforcement.reservation_ttl_seconds`. A settle that was waiting (the
settler holds settles while the store is regressed) then closes it at its real cost; the sweeper
closes the rest at their estimate with its usual `expire` ledger entry. Nothing is closed silently.

Entries after the archived high-water mark come from a store that lost part of its books (a stale
snapshot that kept serving): their deltas are kept, but one that contradicts the ledger of record
is dropped and listed in the report (a close of a reservation already closed in the archive, e.g.
the sweeper expiring again what was settled before the loss; a second reserve of one id). A kept
entry whose `balance_after` was computed on the stale balances is rewritten with the balance it
has on the restored books, the stale value kept as `stale_balance_after` and `restored` = 1.

The settlement journal (PostgreSQL `settlement_journal`, written by the settler before each
settle batch goes to the store): after the rebuild (`WalletService.restore`, which reads the
journal only then, so a settle the settler holds is in it), every journal row received since the
archived high-water entry's time minus the reservation TTL (`journal_lookback_ms`) is matched
against the rebuilt books (`match_journal`): reservation closed there -> nothing; restored open
-> settled at the journaled cost (settle.lua); unknown, i.e. its reserve died with the store ->
booked by settle.lua's recovery branch: a closed reservation record and a `settle` entry with
`reserved` 0 and `recovered` 1 (the audit's `LedgerReplay` and this replay accept it for a
reservation never reserved, and only then). Each goes through the store's settle rule, idempotent
by reservation id, so the settler retrying the same settle meanwhile, or a second restore,
charges nothing twice. The report counts `recovered` (and micros) and lists the `unrecovered`
(a wallet the restored books do not have). Journal rows older than that bound were settled in a
store that then had them archived, or are none of a lost store's.

Not in the ledger, so not restored: denial counters (the 402/hold statistics of the month), the
idempotency records of admin moves (a retried move within 24 h moves again), closed reservation
records (a repeated settle of a closed reservation answers `unknown`; the settler books it only
when it journaled it just now and the reservation could still be open, gateway/settler.py, so a
repeat moves nothing) and cost tickets (held requests are gone anyway).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from keeptrusts_authz.wallets.audit import LedgerReplay
from keeptrusts_authz.wallets.models import (
    FUNDED_FIELD,
    RECOVERED_FIELD,
    JournaledCharge,
    LedgerEntry,
    RestorePlan,
)

#: Days of daily burn rebuilt (settle.lua keeps a day's burn 8 days + 1 h).
BURN_DAYS = 8
_CLOSE_OPS = ("settle", "release", "expire")


def stream_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or "0")


def utc_day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


@dataclass(frozen=True)
class RestoreReport:
    epoch: str
    high_water: str
    reason: str  # why the store was regressed ("forced" when it was not)
    wallets: int
    open_reservations: int
    entries: int
    archived_entries: int
    carried: int
    rewritten: int
    dropped: list[str]
    tail: int
    seconds: float
    # The settlement journal applied after the rebuild (module docstring): charges whose
    # entries died with the store, booked now; `journal_rows` read, `unrecovered` refused ids.
    recovered: int = 0
    recovered_micros: int = 0
    journal_rows: int = 0
    unrecovered: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, org: str, *, now_ms: int, reservation_ttl_ms: int) -> None:
        self.replay = LedgerReplay()
        self.funded: dict[str, int] = {}
        self.created: dict[str, int] = {}
        self.reserves: dict[str, dict[str, str]] = {}  # open reservation -> its reserve entry
        self.closed: set[str] = set()
        self.usage: dict[str, int] = {}
        self.burn: dict[str, dict[str, int]] = {}
        self.periods: dict[str, dict[str, str]] = {}
        self.user_teams: dict[str, str] = {}
        self.burn_from = utc_day(now_ms - (BURN_DAYS - 1) * 86_400_000)
        self.now_ms = now_ms
        self.ttl_ms = reservation_ttl_ms
        self.org = org

    def refusal(self, e: LedgerEntry) -> str | None:
        """Why `e` contradicts the books so far (None: it applies)."""
        rid = e.fields.get("reservation", "")
        if e.op == "reserve" and (rid in self.reserves or rid in self.closed):
            return f"{e.id} (reserve): reservation {rid} was reserved before"
        if is_recovered(e) and rid not in self.reserves and rid not in self.closed:
            return None  # a journaled charge whose reserve died with a lost store
        if e.op in _CLOSE_OPS and rid not in self.reserves:
            state = "closed already" if rid in self.closed else "never reserved"
            return f"{e.id} ({e.op}): reservation {rid} is {state} in the ledger of record"
        if e.op == "correct" and rid not in self.closed:
            return f"{e.id} (correct): reservation {rid} is not closed in the ledger of record"
        return None

    def apply(self, e: LedgerEntry) -> None:
        f = e.fields
        self.replay.apply(e)
        for wid in (e.wallet, f.get("from", ""), f.get("to", "")):
            if wid and wid not in self.created:
                self.created[wid] = e.ts_ms
        if e.op == "credit":
            self._fund(e.wallet, e.amount)
        elif e.op in ("allocate", "transfer"):
            self._fund(f["to"], e.amount)
            if f.get("user_team"):  # the user's team membership, as allocate/transfer.lua set it
                self.user_teams[f["to"]] = f["user_team"]
        elif e.op == "period_rollover":
            spent = self.replay.wallets[f["to"]].spent_total
            self.periods[f["to"]] = {
                "period": f.get("period", ""),
                "entry": e.id,
                "allocation": str(e.amount),
                "carried_in": f.get("carried_in", "0"),
                "returned": f.get("returned", "0"),
                "forgiven": f.get("forgiven", "0"),
                "applied_ms": str(e.ts_ms),
                "spent_at_start": str(spent),
                "rollover": f.get("rollover", ""),
            }
        elif e.op == "reserve":
            self.reserves[f["reservation"]] = {**f, "ts_ms": str(e.ts_ms)}
        elif e.op in _CLOSE_OPS:
            rid = f["reservation"]
            self.reserves.pop(rid, None)
            self.closed.add(rid)
            if e.op != "release":
                self._count(e, estimated=f.get("estimated", "1" if e.op == "expire" else "0"))
        elif e.op == "correct":
            who = f"{f.get('team', '')}|{f.get('group', '')}|"
            label = f.get("label") or f.get("model", "")
            self._add(f"spend|{who}1|{label}", -int(f["previous_cost"]))
            self._add(f"spend|{who}0|{label}", int(f["cost"]))
            self._tokens(f, who, label)
            self._burn(e, int(f["delta"]))

    def _fund(self, wallet: str, amount: int) -> None:
        self.funded[wallet] = self.funded.get(wallet, 0) + amount

    def _add(self, key: str, n: int) -> None:
        self.usage[key] = self.usage.get(key, 0) + n

    def _tokens(self, f: dict[str, str], who: str, label: str) -> None:
        for kind in ("input", "output", "cached"):
            raw = f.get(f"{kind}_tokens") or "0"
            n = int(raw) if raw.lstrip("-").isdigit() else 0
            if n > 0:
                self._add(f"tokens|{who}{kind}|{label}", n)

    def _count(self, e: LedgerEntry, *, estimated: str) -> None:
        f = e.fields
        who = f"{f.get('team', '')}|{f.get('group', '')}|"
        label = f.get("label") or f.get("model", "")
        cost = int(f.get("cost") or "0")
        self._add(f"spend|{who}{estimated}|{label}", cost)
        self._add(f"requests|{who}{label}", 1)
        if e.op == "settle":
            self._tokens(f, who, label)
        self._burn(e, cost)

    def _burn(self, e: LedgerEntry, amount: int) -> None:
        day = utc_day(e.ts_ms)
        if amount != 0 and day >= self.burn_from:
            per = self.burn.setdefault(day, {})
            per[e.wallet] = per.get(e.wallet, 0) + amount

    def plan(self, high_water: str) -> RestorePlan:
        wallets: dict[str, dict[str, int]] = {}
        for wid, acc in self.replay.wallets.items():
            rec = acc.as_dict()
            if wid in self.funded:  # only credit/allocate/transfer-in write the field
                rec[FUNDED_FIELD] = self.funded[wid]
            wallets[wid] = rec
        reservations: dict[str, dict[str, str]] = {}
        deadlines: dict[str, int] = {}
        deadline = self.now_ms + self.ttl_ms
        for rid, f in self.reserves.items():
            reservations[rid] = {
                "wallet": f.get("wallet", ""),
                "amount": f.get("amount", "0"),
                "state": "open",
                "team": f.get("team", ""),
                "group": f.get("group", ""),
                "user": f.get("user", ""),
                "model": f.get("model", ""),
                "deadline_ms": str(deadline),
                "cost": "",
                "overdraft": f.get("overdraft", "0"),
                "created_ms": f.get("ts_ms", ""),
                "restored_ms": str(self.now_ms),
            }
            deadlines[rid] = deadline
        return RestorePlan(
            org=self.org,
            high_water=high_water,
            wallets=wallets,
            created_ms=dict(self.created),
            user_teams=dict(self.user_teams),
            reservations=reservations,
            deadlines=deadlines,
            usage=dict(self.usage),
            burn=self.burn,
            period_state=self.periods,
            entries=self.replay.entries,
        )


async def plan_restore(
    org: str,
    archived: AsyncIterator[LedgerEntry],
    unarchived: AsyncIterator[LedgerEntry],
    *,
    high_water: str | None,
    tail_entries: int,
    reservation_ttl_ms: int,
    now_ms: int | None = None,
) -> RestorePlan:
    """Replay `archived` (the archive from genesis to `high_water`) then `unarchived` (the
    store's ledger; entries at or below the high-water mark are skipped) into a plan whose stream
    tail keeps the newest `tail_entries` archived entries (at least the high-water entry)."""
    b = _Builder(
        org,
        now_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000,
        reservation_ttl_ms=reservation_ttl_ms,
    )
    keep = max(1, tail_entries)
    tail: list[tuple[str, dict[str, str]]] = []
    n_archived = 0
    async for e in archived:
        b.apply(e)
        n_archived += 1
        tail.append((e.id, dict(e.fields)))
        if len(tail) > 2 * keep:
            del tail[: len(tail) - keep]
    tail = tail[-keep:]
    high_ts = int(tail[-1][1].get("ts_ms") or 0) if tail else 0
    errors = list(b.replay.errors)
    floor = stream_key(high_water) if high_water else (-1, -1)
    carried = rewritten = 0
    dropped: list[str] = []
    async for e in unarchived:
        if stream_key(e.id) <= floor:
            continue
        why = b.refusal(e)
        if why is not None:
            dropped.append(why)
            continue
        fields = dict(e.fields)
        stale_after = fields.pop("balance_after", None)
        b.apply(LedgerEntry(e.id, e.ts_ms, e.op, e.wallet, e.amount, fields))
        if stale_after is not None:
            now = b.replay.wallets[e.wallet].balance if e.wallet in b.replay.wallets else 0
            fields["balance_after"] = str(now)
            if str(now) != stale_after:
                fields["stale_balance_after"] = stale_after
                fields["restored"] = "1"
                rewritten += 1
        tail.append((e.id, fields))
        carried += 1
    plan = b.plan(high_water or "0-0")
    plan.tail = tail
    plan.archived_entries = n_archived
    plan.carried = carried
    plan.rewritten = rewritten
    plan.dropped = dropped
    plan.errors = errors + [err for err in b.replay.errors if err not in errors]
    plan.closed = b.closed
    plan.high_water_ts_ms = high_ts
    return plan


def is_recovered(e: LedgerEntry) -> bool:
    """A `settle` booked from the settlement journal (no reserve entry precedes it)."""
    return e.op == "settle" and e.fields.get(RECOVERED_FIELD) == "1"


@dataclass(frozen=True)
class JournalMatch:
    """The settlement journal's rows against the rebuilt books."""

    settle: list[JournaledCharge]  # reservation restored open: close it at the journaled cost
    recover: list[JournaledCharge]  # reservation unknown (its reserve died): book the charge
    closed: int  # reservation already closed in the rebuilt books: nothing to do


def journal_lookback_ms(reservation_ttl_ms: int) -> int:
    """How far before the archived high-water entry the journal is read: a settle is journaled
    just before it is sent to the store, and a reservation is open at most its TTL, so rows older
    than that were either archived or are no charge the store lost."""
    return reservation_ttl_ms


#: Journal rows kept beyond what a restore reads (clock skew between replicas, a restore run
#: long after the loss): pruning must never reach a row a restore could still need.
JOURNAL_PRUNE_MARGIN_MS = 3_600_000


def journal_keep_ms(reservation_ttl_ms: int) -> int:
    """How long before the archived high-water entry journal rows are kept (the archiver prunes
    older ones, ledger/archiver.py): a restore reads from that entry's time minus
    `journal_lookback_ms`, and the high-water mark only moves forward; the settler's
    post-restore path reads only rows it journaled itself just now."""
    return journal_lookback_ms(reservation_ttl_ms) + JOURNAL_PRUNE_MARGIN_MS


def match_journal(plan: RestorePlan, charges: Sequence[JournaledCharge]) -> JournalMatch:
    """Which journaled charges the rebuilt books lack (one row per reservation)."""
    settle: list[JournaledCharge] = []
    recover: list[JournaledCharge] = []
    closed = 0
    seen: set[str] = set()
    for c in charges:
        rid = c.reservation_id
        if rid in seen:
            continue
        seen.add(rid)
        if rid in plan.closed:
            closed += 1
        elif rid in plan.reservations:
            settle.append(c)
        else:
            recover.append(c)
    return JournalMatch(settle, recover, closed)


__all__ = ["BURN_DAYS", "RestoreReport", "plan_restore"]
