"""The one owner of period ids and boundaries (reports, CLI, API and the budget runner use it).

Period ids, by kind (the kind is read from the id's shape):

| kind      | id           | span                                                            |
|-----------|--------------|-----------------------------------------------------------------|
| daily     | `2026-12-01` | one local day                                                   |
| weekly    | `2026-W49`   | one ISO week (Monday to Monday; ISO week-numbering year)        |
| monthly   | `2026-12`    | one calendar month                                              |
| quarterly | `2027-Q1`    | three months from the fiscal year's start (`fiscal_year_start_month`) |
| yearly    | `2027`       | the fiscal year that STARTS in that calendar year               |

Every boundary is local midnight in the calendar's IANA zone, so a month in America/New_York is
not a whole number of 24 h days when it holds a DST change; the instants are exact (zoneinfo).
A fiscal year is named after the calendar year it starts in: with `fiscal_year_start_month: 2`,
`2027` runs from 2027-02-01 to 2028-02-01 and `2027-Q1` is February to April 2027.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keeptrusts_authz.errors import InvalidInput

PeriodKind = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("daily", "weekly", "monthly", "quarterly", "yearly")
ID_FORMATS = "YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY-Qn or YYYY"

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when unknown (tzdata ships the database)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    k = year * 12 + (month - 1) + n
    return k // 12, k % 12 + 1


@dataclass(frozen=True)
class PeriodSpan:
    """One period: its id, kind and [start, end) as aware datetimes in the calendar's zone."""

    id: str
    kind: PeriodKind
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class BudgetCalendar:
    """Local-midnight boundaries in `tz`; quarters and years start at `fiscal_year_start_month`."""

    tz: ZoneInfo
    fiscal_year_start_month: int = 1

    @classmethod
    def utc(cls) -> BudgetCalendar:
        return cls(ZoneInfo("UTC"), 1)

    @classmethod
    def of(cls, timezone: str, fiscal_year_start_month: int = 1) -> BudgetCalendar:
        return cls(zone(timezone), fiscal_year_start_month)

    def _midnight(self, d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=self.tz)

    def _span(self, pid: str, kind: PeriodKind, first: date, after: date) -> PeriodSpan:
        return PeriodSpan(pid, kind, self._midnight(first), self._midnight(after))

    # -- the period holding an instant -------------------------------------------------------

    def period_at(self, kind: PeriodKind, instant: datetime) -> PeriodSpan:
        if instant.tzinfo is None:
            raise ValueError("period_at needs an aware datetime")
        d = instant.astimezone(self.tz).date()
        if kind == "daily":
            return self.day(d)
        if kind == "weekly":
            iso = d.isocalendar()
            return self.week(iso.year, iso.week)
        if kind == "monthly":
            return self.month(d.year, d.month)
        fy, offset = self._fiscal_position(d.year, d.month)
        if kind == "quarterly":
            return self.quarter(fy, offset // 3 + 1)
        return self.fiscal_year(fy)

    def _fiscal_position(self, year: int, month: int) -> tuple[int, int]:
        """(fiscal year, months since its start) of a calendar month."""
        offset = (month - self.fiscal_year_start_month) % 12
        fy = year if month >= self.fiscal_year_start_month else year - 1
        return fy, offset

    def next(self, span: PeriodSpan) -> PeriodSpan:
        """The period right after `span` (same kind)."""
        return self.period_at(span.kind, span.end + timedelta(hours=1))

    def previous(self, span: PeriodSpan) -> PeriodSpan:
        return self.period_at(span.kind, span.start - timedelta(hours=1))

    # -- constructors by id part -------------------------------------------------------------

    def day(self, d: date) -> PeriodSpan:
        return self._span(d.isoformat(), "daily", d, d + timedelta(days=1))

    def week(self, iso_year: int, week: int) -> PeriodSpan:
        try:
            monday = date.fromisocalendar(iso_year, week, 1)
        except ValueError:
            raise InvalidInput(
                f"period: {iso_year} has no ISO week {week:02d}", {"field": "period"}
            ) from None
        return self._span(f"{iso_year:04d}-W{week:02d}", "weekly", monday, monday + timedelta(7))

    def month(self, year: int, month: int) -> PeriodSpan:
        ny, nm = _add_months(year, month, 1)
        return self._span(
            f"{year:04d}-{month:02d}", "monthly", date(year, month, 1), date(ny, nm, 1)
        )

    def quarter(self, fiscal_year: int, q: int) -> PeriodSpan:
        y0, m0 = _add_months(fiscal_year, self.fiscal_year_start_month, 3 * (q - 1))
        y1, m1 = _add_months(y0, m0, 3)
        return self._span(f"{fiscal_year:04d}-Q{q}", "quarterly", date(y0, m0, 1), date(y1, m1, 1))

    def fiscal_year(self, fiscal_year: int) -> PeriodSpan:
        m = self.fiscal_year_start_month
        return self._span(
            f"{fiscal_year:04d}", "yearly", date(fiscal_year, m, 1), date(fiscal_year + 1, m, 1)
        )

    # -- ids ---------------------------------------------------------------------------------

    def parse(self, period_id: str) -> PeriodSpan:
        """The span of a period id; InvalidInput (field `period`) naming the accepted forms."""
        pid = period_id.strip()
        try:
            if m := _DAY.match(pid):
                return self.day(date(int(m[1]), int(m[2]), int(m[3])))
            if m := _WEEK.match(pid):
                return self.week(int(m[1]), int(m[2]))
            if m := _MONTH.match(pid):
                if not 1 <= int(m[2]) <= 12:
                    raise ValueError("month out of range")
                return self.month(int(m[1]), int(m[2]))
            if m := _QUARTER.match(pid):
                return self.quarter(int(m[1]), int(m[2]))
            if m := _YEAR.match(pid):
                return self.fiscal_year(int(m[1]))
        except ValueError:
            pass
        raise InvalidInput(
            f"period: {period_id[:40]!r} is not a period id (expected {ID_FORMATS}, "
            "e.g. 2026-12, 2027-Q1, 2026-W49, 2026-12-01, 2027)",
            {"field": "period"},
        )

    def between(
        self, kind: PeriodKind, after: PeriodSpan | None, instant: datetime
    ) -> list[PeriodSpan]:
        """The periods of `kind` after `after` up to the one holding `instant`, oldest first
        (only the current one when `after` is None, or when `after` is not older)."""
        current = self.period_at(kind, instant)
        if after is None:
            return [current]
        if after.start >= current.start:
            return []
        out: list[PeriodSpan] = []
        cur = self.next(after)
        while cur.start <= current.start:
            out.append(cur)
            cur = self.next(cur)
        return out


__all__ = ["ID_FORMATS", "PERIOD_KINDS", "BudgetCalendar", "PeriodKind", "PeriodSpan", "zone"]
