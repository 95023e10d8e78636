"""periods/calendar.py: period ids and local-midnight boundaries (no Redis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from keeptrusts_authz.errors import InvalidInput
from keeptrusts_authz.periods.calendar import BudgetCalendar

NY = BudgetCalendar.of("America/New_York", 2)


def test_month_ends_and_leap_years() -> None:
    feb24 = NY.parse("2024-02")
    assert feb24.end.date() == date(2024, 3, 1)
    assert (feb24.end.date() - feb24.start.date()).days == 29
    assert (NY.parse("2026-02").end.date() - NY.parse("2026-02").start.date()).days == 28
    assert NY.parse("2024-02-29").end.date() == date(2024, 3, 1)
    with pytest.raises(InvalidInput):
        NY.parse("2026-02-29")
    assert NY.parse("2026-12").end == datetime(2027, 1, 1, tzinfo=NY.tz)
    assert NY.next(NY.parse("2026-12")).id == "2027-01"
    assert NY.previous(NY.parse("2027-01")).id == "2026-12"


def test_dst_transitions_in_new_york() -> None:
    march = NY.parse("2026-03")  # spring forward on 2026-03-08: a 23 h day
    assert march.start.utcoffset() == timedelta(hours=-5)
    assert march.end.utcoffset() == timedelta(hours=-4)
    assert march.end_ms - march.start_ms == (31 * 24 - 1) * 3_600_000
    day = NY.parse("2026-03-08")
    assert day.end_ms - day.start_ms == 23 * 3_600_000
    fall = NY.parse("2026-11-01")  # fall back: a 25 h day
    assert fall.end_ms - fall.start_ms == 25 * 3_600_000
    # 00:30 local on the first of the month belongs to it, 23:59 local the evening before not.
    assert NY.period_at("monthly", datetime(2026, 11, 1, 4, 30, tzinfo=UTC)).id == "2026-11"
    assert NY.period_at("monthly", datetime(2026, 11, 1, 3, 59, tzinfo=UTC)).id == "2026-10"
    assert NY.period_at("monthly", datetime(2027, 1, 1, 5, 0, 5, tzinfo=UTC)).id == "2027-01"
    assert NY.period_at("monthly", datetime(2027, 1, 1, 4, 59, tzinfo=UTC)).id == "2026-12"


def test_fiscal_quarters_and_years_start_in_february() -> None:
    q1 = NY.parse("2027-Q1")
    assert (q1.start.date(), q1.end.date()) == (date(2027, 2, 1), date(2027, 5, 1))
    q4 = NY.parse("2026-Q4")
    assert (q4.start.date(), q4.end.date()) == (date(2026, 11, 1), date(2027, 2, 1))
    at = datetime(2027, 1, 15, 12, tzinfo=UTC)
    assert NY.period_at("quarterly", at).id == "2026-Q4"
    assert NY.period_at("yearly", at).id == "2026"
    assert NY.next(q4).id == "2027-Q1"
    fy = NY.parse("2027")
    assert (fy.start.date(), fy.end.date()) == (date(2027, 2, 1), date(2028, 2, 1))
    calendar_q1 = BudgetCalendar.utc().parse("2027-Q1")
    assert (calendar_q1.start.date(), calendar_q1.end.date()) == (
        date(2027, 1, 1),
        date(2027, 4, 1),
    )


def test_iso_weeks() -> None:
    w49 = NY.parse("2026-W49")
    assert w49.start.date() == date(2026, 11, 30) and w49.start.weekday() == 0
    w53 = NY.parse("2026-W53")  # 2026 starts on a Thursday: it has 53 ISO weeks
    assert (w53.start.date(), w53.end.date()) == (date(2026, 12, 28), date(2027, 1, 4))
    assert NY.next(w53).id == "2027-W01"
    with pytest.raises(InvalidInput, match="no ISO week 53"):
        NY.parse("2027-W53")  # 2027 has 52
    assert NY.period_at("weekly", datetime(2027, 1, 2, 12, tzinfo=UTC)).id == "2026-W53"


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-Q5", "26-12", "2026-W00", "", "x"])
def test_bad_ids_name_the_forms(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        NY.parse(bad)
    assert exc.value.details == {"field": "period"}


def test_between_lists_missed_periods_in_order() -> None:
    last = NY.parse("2026-09")
    at = datetime(2027, 1, 1, 5, 0, 5, tzinfo=UTC)
    assert [s.id for s in NY.between("monthly", last, at)] == [
        "2026-10",
        "2026-11",
        "2026-12",
        "2027-01",
    ]
    assert [s.id for s in NY.between("monthly", None, at)] == ["2027-01"]
    assert NY.between("monthly", NY.parse("2027-01"), at) == []
    assert NY.between("monthly", NY.parse("2027-02"), at) == []  # the clock went back: nothing
