"""Chargeback/showback report of one period, built from the ledger (integer micros throughout).

Every ledger entry of the period lands in exactly one row per column it feeds, so the rows sum to
the ledger totals to the micro (the totals row is the sum of the rows, and `ledger_totals` is
computed independently from the raw entries; `Report.check()` compares them).

Rows (``group_by``):
- ``team``: spend by the reservation's team (the group's `wallet_team_id`), whichever wallet funded
  it; funding moves (allocate, transfer, reclaim) on `team:<id>` wallets by team, on user wallets
  in the `(user wallets)` row. `org_backstop_spent` is the part of a team's spend charged to the
  org wallet. `ticket_funded_spent` is the spend of requests an approved cost ticket funded
  (their reservation was made by `ticket:<id>`, wallets/holds.py): with `funding: org` it is
  also in `org_backstop_spent` (the org chose to pay it; the rest of that column is the cascade
  falling through to the org), with `funding: overdraft` it is charged to the team wallet.
  Blocked/held counts come from the monthly denial counters.
- ``user``: the same with users and user wallets (team wallets in `(team wallets)`).
- ``consumer_group`` / ``model``: spend, requests and tokens only (money moves have no group).

`remaining` is balance + reserved (money not yet spent) of the row's wallets at the end of the
period, from a replay of the ledger up to that instant.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol

from keeptrusts_authz.errors import InvalidInput
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.periods.calendar import ID_FORMATS, BudgetCalendar
from keeptrusts_authz.wallets.audit import LedgerReplay
from keeptrusts_authz.wallets.models import TICKET_ACTOR, LedgerEntry

GroupBy = Literal["team", "consumer_group", "model", "user"]
GROUP_BYS: tuple[GroupBy, ...] = ("team", "consumer_group", "model", "user")
SPEND_OPS = ("settle", "expire")


NO_TEAM = "(no team)"
NO_GROUP = "(none)"
NO_MODEL = "(unknown)"
NO_USER = "(anonymous)"
USER_WALLETS = "(user wallets)"
TEAM_WALLETS = "(team wallets)"
TOTAL = "TOTAL"


class LedgerSource(Protocol):
    """What the report reads (a WalletStore satisfies it)."""

    def iter_ledger(self, upto: str | None = None, batch: int = 5000) -> AsyncIterator[LedgerEntry]:
        """Oldest first."""
        ...

    async def denial_counters(self, month: str | None = None) -> dict[str, int]: ...


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; `label` is `2026-11` or `2026-11-03..2026-11-09`."""

    label: str
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def months(self) -> list[str]:
        """The `yyyy-mm` months the period touches (denial counters are monthly)."""
        out: list[str] = []
        cur = date(self.start.year, self.start.month, 1)
        last = (self.end - timedelta(microseconds=1)).date()
        while cur <= last:
            out.append(cur.strftime("%Y-%m"))
            cur = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
        return out

    def days(self) -> list[str]:
        out: list[str] = []
        cur = self.start.date()
        while datetime(cur.year, cur.month, cur.day, tzinfo=UTC) < self.end:
            out.append(cur.isoformat())
            cur += timedelta(days=1)
        return out

    @property
    def whole_months(self) -> bool:
        return self.start.day == 1 and self.end.day == 1


MAX_REPORT_DAYS = 366
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: str, field: str) -> date:
    try:
        if not _DAY.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: expected YYYY-MM-DD", {"field": field}) from None


def parse_period(
    period: str | None,
    date_from: str | None = None,
    date_to: str | None = None,
    *,
    calendar: BudgetCalendar | None = None,
) -> Period:
    """The one reading of a report window (CLI `--period/--from/--to`, API `period/from/to`):
    a period id of periods/calendar.py (2026-12, 2027-Q1, 2026-W49, 2026-12-01, 2027), or
    inclusive local days from..to (inside the period when both are given); boundaries are local
    midnights of `calendar` (default: UTC, fiscal year = calendar year). Errors name the field."""
    cal = calendar or BudgetCalendar.utc()
    span = cal.parse(period) if period else None
    if not (date_from or date_to):
        if span is None:
            raise InvalidInput(
                f"period: required ({ID_FORMATS}), or from and to", {"field": "period"}
            )
        return Period(span.id, span.start_utc, span.end_utc)
    if not date_from:
        raise InvalidInput("from: required together with to", {"field": "from"})
    if not date_to:
        raise InvalidInput("to: required together with from", {"field": "to"})
    first, last = _day(date_from, "from"), _day(date_to, "to")
    if last < first:
        raise InvalidInput("to: before from", {"field": "to"})
    if (last - first).days > MAX_REPORT_DAYS:
        raise InvalidInput(f"to: a report covers at most {MAX_REPORT_DAYS} days", {"field": "to"})
    start, end = cal.day(first), cal.day(last)
    if span is not None:
        if not span.contains(start.start):
            raise InvalidInput("from: must lie inside period", {"field": "from"})
        if not span.contains(end.start):
            raise InvalidInput("to: must lie inside period", {"field": "to"})
    return Period(f"{first.isoformat()}..{last.isoformat()}", start.start_utc, end.end_utc)


@dataclass
class Row:
    key: str
    allocated: int = 0
    transferred_in: int = 0
    transferred_out: int = 0
    reclaimed: int = 0
    spent: int = 0
    spent_real: int = 0
    spent_estimated: int = 0
    org_backstop_spent: int = 0
    ticket_funded_spent: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    blocked: int = 0
    held: int = 0
    remaining: int = 0
    # Budget period boundaries (period_rollover entries): the balance kept from the previous
    # period, what went back to the pool, debt the new period forgave; used_pct = spent as a
    # whole percentage of carried_in + allocated.
    carried_in: int = 0
    returned: int = 0
    forgiven: int = 0
    used_pct: int = 0

    def add(self, other: Row) -> None:
        for f in fields(self):
            if f.name != "key":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


MONEY_COLUMNS = frozenset(
    {
        "allocated",
        "transferred_in",
        "transferred_out",
        "reclaimed",
        "spent",
        "spent_real",
        "spent_estimated",
        "org_backstop_spent",
        "ticket_funded_spent",
        "remaining",
        "carried_in",
        "returned",
        "forgiven",
    }
)
_SPEND_COLUMNS = [
    "spent",
    "spent_real",
    "spent_estimated",
    "org_backstop_spent",
    "ticket_funded_spent",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
]
_FUNDING_COLUMNS = ["allocated", "transferred_in", "transferred_out", "reclaimed"]


def columns_for(group_by: GroupBy) -> list[str]:
    if group_by == "team":
        return [*_FUNDING_COLUMNS, *_SPEND_COLUMNS, "blocked", "held", "remaining"]
    if group_by == "user":
        return [*_FUNDING_COLUMNS, *_SPEND_COLUMNS, "remaining"]
    return list(_SPEND_COLUMNS)


FocusKey = tuple[str, str, str, str, str, str]  # day, team, group, model, user, paying wallet


@dataclass
class FocusCell:
    """Spend of one (day, team, group, model, user, wallet): the FOCUS export's row."""

    cost: int = 0
    estimated: int = 0
    reservations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    ticket_funded: int = 0


@dataclass
class LedgerTotals:
    """Computed straight from the period's entries, independently of the rows."""

    credited: int = 0
    allocated: int = 0
    reclaimed: int = 0
    transferred: int = 0
    spent: int = 0
    spent_estimated: int = 0
    spend_entries: int = 0
    entries: int = 0
    rollovers: int = 0
    ticket_funded: int = 0


@dataclass
class Report:
    period: Period
    group_by: GroupBy
    currency: str
    org: str
    rows: list[Row]
    totals: Row
    ledger: LedgerTotals
    daily_spend: dict[str, dict[str, int]]  # day -> row key -> micros
    org_remaining: int
    generated_at: datetime
    notes: list[str] = field(default_factory=list)
    focus: dict[FocusKey, FocusCell] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        cols = columns_for(self.group_by)
        if self.ledger.rollovers and self.group_by in ("team", "user"):
            cols = [*cols[:1], "carried_in", "returned", "forgiven", *cols[1:], "used_pct"]
        return cols

    def check(self) -> list[str]:
        """Differences between the totals row and the ledger totals (empty = reconciled)."""
        t, lt = self.totals, self.ledger
        problems: list[str] = []
        pairs = [("spent", t.spent, lt.spent), ("requests", t.requests, lt.spend_entries)]
        pairs.append(("spent_estimated", t.spent_estimated, lt.spent_estimated))
        pairs.append(("ticket_funded_spent", t.ticket_funded_spent, lt.ticket_funded))
        if self.group_by in ("team", "user"):
            pairs += [
                ("allocated", t.allocated, lt.allocated),
                ("reclaimed", t.reclaimed, lt.reclaimed),
                ("transferred_in", t.transferred_in, lt.transferred),
                ("transferred_out", t.transferred_out, lt.transferred),
            ]
        for name, got, want in pairs:
            if got != want:
                problems.append(f"{name}: rows sum to {got}, ledger says {want}")
        return problems


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class _Builder:
    def __init__(self, period: Period, group_by: GroupBy) -> None:
        self.period = period
        self.group_by = group_by
        self.rows: dict[str, Row] = {}
        self.ledger = LedgerTotals()
        self.daily: dict[str, dict[str, int]] = {}
        self.focus: dict[FocusKey, FocusCell] = {}
        # Reservations funded by an approved cost ticket (their reserve entry's actor).
        self.ticket_reservations: set[str] = set()

    def note_reserve(self, e: LedgerEntry) -> None:
        if e.op == "reserve" and e.fields.get("actor", "").startswith(TICKET_ACTOR):
            self.ticket_reservations.add(e.fields.get("reservation", ""))

    def ticket_funded(self, e: LedgerEntry) -> bool:
        return bool(e.fields.get("reservation")) and (
            e.fields["reservation"] in self.ticket_reservations
        )

    def row(self, key: str) -> Row:
        r = self.rows.get(key)
        if r is None:
            r = self.rows[key] = Row(key)
        return r

    def wallet_key(self, wallet_id: str) -> str | None:
        """The row that funding moves of `wallet_id` belong to (None: not attributed)."""
        scope, _, owner = wallet_id.partition(":")
        if self.group_by == "team":
            if scope == "team":
                return owner
            return USER_WALLETS if scope == "user" else None
        if self.group_by == "user":
            if scope == "user":
                return owner
            return TEAM_WALLETS if scope == "team" else None
        return None

    def spend_key(self, f: dict[str, str]) -> str:
        if self.group_by == "team":
            return f.get("team") or NO_TEAM
        if self.group_by == "consumer_group":
            return f.get("group") or NO_GROUP
        if self.group_by == "model":
            return f.get("model") or NO_MODEL
        return f.get("user") or NO_USER

    def add_focus(
        self,
        e: LedgerEntry,
        day: str,
        cost: int,
        estimated: int,
        reservations: int,
        ticket_funded: int = 0,
    ) -> None:
        f = e.fields
        key = (day, f.get("team", ""), f.get("group", ""), f.get("model", ""), f.get("user", ""))
        cell = self.focus.get((*key, e.wallet))
        if cell is None:
            cell = self.focus[(*key, e.wallet)] = FocusCell()
        cell.cost += cost
        cell.estimated += estimated
        cell.reservations += reservations
        cell.ticket_funded += ticket_funded
        cell.input_tokens += _int(f.get("input_tokens"))
        cell.output_tokens += _int(f.get("output_tokens"))
        cell.cached_tokens += _int(f.get("cached_tokens"))

    def apply(self, e: LedgerEntry) -> None:
        f = e.fields
        lt = self.ledger
        lt.entries += 1
        a = e.amount
        if e.op == "credit":
            lt.credited += a
        elif e.op == "allocate":
            lt.allocated += a
            key = self.wallet_key(f.get("to") or e.wallet)
            if key is not None:
                self.row(key).allocated += a
        elif e.op == "period_rollover":
            # Counted as allocated: the period's amount; what the pool paid is
            # amount - returned + forgiven (the `delta` field).
            lt.allocated += a
            lt.rollovers += 1
            key = self.wallet_key(f.get("to") or e.wallet)
            if key is not None:
                r = self.row(key)
                r.allocated += a
                r.carried_in += _int(f.get("carried_in"))
                r.returned += _int(f.get("returned"))
                r.forgiven += _int(f.get("forgiven"))
        elif e.op == "reclaim":
            lt.reclaimed += a
            key = self.wallet_key(f.get("from") or e.wallet)
            if key is not None:
                self.row(key).reclaimed += a
        elif e.op == "transfer":
            lt.transferred += a
            src = self.wallet_key(f.get("from") or e.wallet)
            dst = self.wallet_key(f.get("to", ""))
            if src is not None:
                self.row(src).transferred_out += a
            if dst is not None:
                self.row(dst).transferred_in += a
        elif e.op in SPEND_OPS:
            cost = _int(f.get("cost"))
            estimated = e.op == "expire" or f.get("estimated") == "1"
            lt.spent += cost
            lt.spend_entries += 1
            if estimated:
                lt.spent_estimated += cost
            key = self.spend_key(f)
            r = self.row(key)
            r.spent += cost
            r.requests += 1
            if estimated:
                r.spent_estimated += cost
            else:
                r.spent_real += cost
            if e.wallet == "org":
                r.org_backstop_spent += cost
            ticket = cost if self.ticket_funded(e) else 0
            r.ticket_funded_spent += ticket
            lt.ticket_funded += ticket
            r.input_tokens += _int(f.get("input_tokens"))
            r.output_tokens += _int(f.get("output_tokens"))
            r.cached_tokens += _int(f.get("cached_tokens"))
            day = datetime.fromtimestamp(e.ts_ms / 1000, UTC).date().isoformat()
            per_day = self.daily.setdefault(day, {})
            per_day[key] = per_day.get(key, 0) + cost
            self.add_focus(e, day, cost, cost if estimated else 0, 1, ticket)
        elif e.op == "correct":
            # Late real usage replacing an estimate, in the period of the correction: the
            # request was counted by its first close; its spend moves from estimated to real.
            cost, previous = _int(f.get("cost")), _int(f.get("previous_cost"))
            lt.spent += cost - previous
            lt.spent_estimated -= previous
            r = self.row(self.spend_key(f))
            r.spent += cost - previous
            r.spent_estimated -= previous
            r.spent_real += cost
            if e.wallet == "org":
                r.org_backstop_spent += cost - previous
            ticket = cost - previous if self.ticket_funded(e) else 0
            r.ticket_funded_spent += ticket
            lt.ticket_funded += ticket
            r.input_tokens += _int(f.get("input_tokens"))
            r.output_tokens += _int(f.get("output_tokens"))
            r.cached_tokens += _int(f.get("cached_tokens"))
            day = datetime.fromtimestamp(e.ts_ms / 1000, UTC).date().isoformat()
            per_day = self.daily.setdefault(day, {})
            key = self.spend_key(f)
            per_day[key] = per_day.get(key, 0) + cost - previous
            self.add_focus(e, day, cost - previous, -previous, 0, ticket)


def _in_period(e: LedgerEntry, period: Period) -> bool:
    # A budget boundary belongs to the period it opens, whenever it was applied (a catch-up
    # after downtime, or ahead of time by `periods run --now`).
    return period.start_ms <= _period_instant(e) < period.end_ms


def _period_instant(e: LedgerEntry) -> int:
    """The instant that places an entry in a period: a boundary's period start; a spend's
    reservation time (a request reserved in one period and settled in the next is charged to the
    period of its reservation); else the entry's own time."""
    if e.op == "period_rollover":
        return _int(e.fields.get("period_start_ms")) or e.ts_ms
    if e.op in SPEND_OPS:
        return _int(e.fields.get("reserved_ms")) or e.ts_ms
    return e.ts_ms


def _late(e: LedgerEntry, period: Period) -> bool:
    """A spend of this period (by reservation) settled after the period's end."""
    return e.op in SPEND_OPS and e.ts_ms >= period.end_ms and _in_period(e, period)


async def build_report(
    source: LedgerSource,
    period: Period,
    group_by: GroupBy = "team",
    *,
    currency: str = "USD",
    org: str = "",
    now: datetime | None = None,
) -> Report:
    if group_by not in GROUP_BYS:
        raise InvalidInput(f"group_by: one of {', '.join(GROUP_BYS)}")
    builder = _Builder(period, group_by)
    late_count = late_cost = 0
    replay = LedgerReplay()  # balances at the end of the period, for `remaining`
    entries = source.iter_ledger()
    try:
        async for entry in entries:
            builder.note_reserve(entry)
            if entry.ts_ms < period.end_ms:
                replay.apply(entry)
            elif entry.op != "period_rollover" and entry.op not in SPEND_OPS:
                continue  # later entries matter only as this period's boundary or late spend
            if _in_period(entry, period):
                builder.apply(entry)
                if _late(entry, period):
                    late_count += 1
                    late_cost += _int(entry.fields.get("cost"))
    finally:
        aclose = getattr(entries, "aclose", None)
        if aclose is not None:
            await aclose()
    org_remaining = 0
    if group_by in ("team", "user"):
        for wid, acc in replay.wallets.items():
            if wid == "org":
                org_remaining = acc.balance + acc.reserved
                continue
            key = builder.wallet_key(wid)
            if key is not None:
                builder.row(key).remaining += acc.balance + acc.reserved
    notes: list[str] = []
    if late_count:
        notes.append(
            f"{late_count} late settlement(s) totalling {format_micros(late_cost)}: reserved in "
            "this period, settled after its end; charged here, by reservation time"
        )
    if group_by == "team":
        for month in period.months():
            for name, count in (await source.denial_counters(month)).items():
                team, _, outcome = name.rpartition("|")
                if outcome not in ("blocked", "held"):
                    continue
                r = builder.row(team or NO_TEAM)
                setattr(r, outcome, getattr(r, outcome) + count)
        if not period.whole_months:
            notes.append(
                "blocked/held counts are monthly: they cover the whole of "
                + ", ".join(period.months())
            )
    rows = sorted(builder.rows.values(), key=lambda r: (r.key.startswith("("), r.key))
    totals = Row(TOTAL)
    for r in rows:
        totals.add(r)
    for r in [*rows, totals]:
        funded = r.carried_in + r.allocated
        r.used_pct = r.spent * 100 // funded if funded > 0 else 0
    return Report(
        period=period,
        group_by=group_by,
        currency=currency,
        org=org,
        rows=rows,
        totals=totals,
        ledger=builder.ledger,
        daily_spend={d: dict(v) for d, v in sorted(builder.daily.items())},
        org_remaining=org_remaining,
        generated_at=now or datetime.now(UTC),
        notes=notes,
        focus=dict(sorted(builder.focus.items())),
    )


__all__ = [
    "GROUP_BYS",
    "MONEY_COLUMNS",
    "TOTAL",
    "FocusCell",
    "FocusKey",
    "GroupBy",
    "LedgerSource",
    "LedgerTotals",
    "Period",
    "Report",
    "Row",
    "build_report",
    "columns_for",
    "parse_period",
]
