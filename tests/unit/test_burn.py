"""The burn rule (wallets/burn.py): the one both the wallet API and the Prometheus gauges use."""

from datetime import UTC, date, datetime

from keeptrusts_authz.wallets.burn import (
    BurnWindow,
    burn_days,
    burn_window_start,
    depletion_date,
)

TODAY = date(2026, 11, 29)
ALLOCATED = 10**12


def test_projection_in_days() -> None:
    assert depletion_date(10_000_000, ALLOCATED, 1_000_000, TODAY) == "2026-12-09"


def test_a_trickle_against_a_large_balance_is_never_not_an_overflow() -> None:
    assert depletion_date(1_200_000_000, ALLOCATED, 1, TODAY) == ""
    assert depletion_date(10**15, ALLOCATED, 1, TODAY) == ""


def test_no_burn_and_depleted() -> None:
    assert depletion_date(5, ALLOCATED, 0, TODAY) == ""
    assert depletion_date(0, ALLOCATED, 0, TODAY) == "2026-11-29"
    assert depletion_date(0, 0, 0, TODAY) == ""  # never funded, never spent: not "depleted today"


NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


def test_window_is_today_and_the_seven_previous_utc_days() -> None:
    days = burn_days(NOON)
    assert days[0] == "2026-11-24" and days[-1] == "2026-12-01" and len(days) == 8
    assert burn_window_start(NOON) == datetime(2026, 11, 24, tzinfo=UTC).timestamp()


def test_rate_folds_the_days_in_the_window_only() -> None:
    by_day = {
        "2026-11-23": {"team:a": 999_000_000},  # a day before the window: ignored
        "2026-11-24": {"team:a": 3_000_000},
        "2026-12-01": {"team:a": 4_500_000, "team:b": 1},
    }
    w = BurnWindow.from_days(by_day, NOON)
    assert w.micros("team:a") == 7_500_000 and w.micros("team:c") == 0
    # 7.5 days covered: 1 micro-unit per second of window -> exact integer micros per day
    assert w.seconds == 7.5 * 86_400
    assert w.per_day("team:a") == 1_000_000
    assert w.per_second("team:a") == 7_500_000 / (7.5 * 86_400)
    assert w.depletion_seconds("team:a", 2_000_000) == 2 * 86_400
    assert w.depletion_seconds("team:a", 0) == 0.0
    assert w.depletion_seconds("team:c", 5) is None
