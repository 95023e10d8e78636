"""The HTML report as a person reads it: key columns first, one number of decimals, round ticks."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest

from keeptrusts_authz.reports.chargeback import LedgerTotals, Period, Report, Row
from keeptrusts_authz.reports.render import fixed, nice_ticks, report_decimals, tick_label, to_html

pytestmark = pytest.mark.unit


def _report(spent: int, allocated: int = 300_000_000) -> Report:
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    row = Row("team_eng", allocated=allocated, spent=spent, spent_real=spent, requests=3,
              remaining=allocated - spent)  # fmt: skip
    totals = Row("TOTAL")
    totals.add(row)
    return Report(
        period=Period("2026-12", start, end),
        group_by="team",
        currency="USD",
        org="acme",
        rows=[row],
        totals=totals,
        ledger=LedgerTotals(allocated=allocated, spent=spent, spend_entries=3),
        daily_spend={"2026-12-01": {"team_eng": spent}},
        org_remaining=0,
        generated_at=start,
    )


@pytest.mark.parametrize(
    ("peak", "step", "top"),
    [
        (42_970, 20_000, 60_000),  # the 0.04297...: ticks 0, 0.02, 0.04, 0.06
        (1, 1, 1),
        (1_000_000, 500_000, 1_000_000),
        (7_300_000, 2_000_000, 8_000_000),
        (123_456_789, 50_000_000, 150_000_000),
    ],
)
def test_axis_ticks_are_round(peak: int, step: int, top: int) -> None:
    got_step, ticks = nice_ticks(peak)
    assert got_step == step and ticks[0] == 0 and ticks[-1] == top >= peak
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert str(step).rstrip("0") in ("1", "2", "5")


def test_tick_labels_carry_the_decimals_of_their_step() -> None:
    assert [tick_label(v, 20_000) for v in (0, 20_000, 40_000)] == ["0.00", "0.02", "0.04"]
    assert tick_label(2_000_000, 1_000_000) == "2"
    assert tick_label(5, 1) == "0.000005"


def test_fixed_decimals() -> None:
    assert fixed(1_234_567_890_000, 2) == "1,234,567.89"
    assert fixed(-5_000, 2) == "-0.01"  # half away from zero
    assert fixed(4_999, 2) == "0.00"
    assert fixed(450, 6) == "0.000450"


def test_one_number_of_decimals_per_report() -> None:
    assert report_decimals(_report(spent=2_500_000)) == 2
    assert report_decimals(_report(spent=2_500_001)) == 6
    page = to_html(_report(spent=2_500_001))
    amounts = re.findall(r"<td>(-?[\d,]+\.\d+)</td>", page)
    assert amounts and {len(a.rpartition(".")[2]) for a in amounts} == {6}


def test_remaining_and_used_lead_the_budget_table() -> None:
    page = to_html(_report(spent=75_000_000))
    budget = page[page.index('id="chargeback"') :]
    heads = re.findall(r"<th>([^<]*)</th>", budget[: budget.index("</thead>")])
    assert heads[:5] == ["team", "remaining", "% used", "spent", "allocated"]
    assert "25.0%" in budget  # 75 of 300
    assert 'id="chargeback-usage"' in page
