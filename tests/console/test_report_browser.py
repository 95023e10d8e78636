"""The chargeback HTML report (`make report`, format=html) in real Chromium at 1280 and 1400 px:
the columns finance reads first are visible, no table is cut, ticks are round; screenshots in
test-artifacts/console/."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from keeptrusts_authz.reports.chargeback import LedgerTotals, Period, Report, Row
from keeptrusts_authz.reports.render import to_html
from tests.console.conftest import ARTIFACTS

pytestmark = pytest.mark.timeout(120)


def _big_report() -> Report:
    """A team report with every column (a budget rollover adds carried in/returned/forgiven)."""
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    rows = []
    daily: dict[str, dict[str, int]] = {}
    for i, name in enumerate(
        ["team_engineering_platform", "team_support", "team_marketing", "team_legal",
         "team_research", "team_data_science", "(user wallets)"]
    ):  # fmt: skip
        spent = 1_234_567_891 * (i + 1) + 4_297_123
        row = Row(name, allocated=5_000_000_000_000 // (i + 1), transferred_in=12_500_000,
                  transferred_out=12_500_000, reclaimed=1_000_000, spent=spent,
                  spent_real=spent - 1_000_001, spent_estimated=1_000_001,
                  org_backstop_spent=333_333, requests=123_456 * (i + 1),
                  input_tokens=98_765_432, output_tokens=12_345_678, cached_tokens=1_234_567,
                  blocked=17, held=3, remaining=4_000_000_000_000 // (i + 1), carried_in=1_500_000,
                  returned=250_000, forgiven=10_000, used_pct=42)  # fmt: skip
        rows.append(row)
        for d in range(1, 32):
            daily.setdefault(f"2026-12-{d:02d}", {})[name] = spent // 31
    totals = Row("TOTAL")
    for r in rows:
        totals.add(r)
    ledger = LedgerTotals(
        allocated=totals.allocated, reclaimed=totals.reclaimed,
        transferred=totals.transferred_in, spent=totals.spent,
        spent_estimated=totals.spent_estimated, spend_entries=totals.requests, rollovers=1,
    )  # fmt: skip
    return Report(Period("2026-12", start, end), "team", "USD", "acme", rows, totals, ledger,
                  daily, 0, start)  # fmt: skip


@pytest.mark.parametrize("width", [1280, 1400])
def test_html_report_shows_the_key_columns_and_round_ticks(browser: Any, width: int) -> None:
    report = _big_report()
    assert len(report.columns) >= 17
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "report.html"
    path.write_text(to_html(report), encoding="utf-8")
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(path.as_uri())
        page.screenshot(path=str(ARTIFACTS / f"report-{width}.png"), full_page=True)
        heads = page.locator("#chargeback thead th").all_inner_texts()
        assert heads[1:3] == ["remaining", "% used"]
        for label in ("remaining", "% used"):
            box = page.locator("#chargeback thead th", has_text=label).first.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width, label
        if width >= 1400:
            cut = page.evaluate(
                "() => [...document.querySelectorAll('.scroll')]"
                ".filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.firstChild.id)"
            )
            assert not cut, f"tables cut at {width} px: {cut}"
        # One number of decimals in every money cell of both tables.
        cells = page.locator("table td").all_inner_texts()
        decimals = {len(c.rpartition(".")[2]) for c in cells if "." in c and "%" not in c}
        assert decimals == {6}
        ticks = [
            Decimal(t.replace(",", ""))
            for t in page.locator("#daily-spend text.tick").all_text_contents()
        ]
        steps = {b - a for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1 and next(iter(steps)).normalize().as_tuple().digits in (
            (1,),
            (2,),
            (5,),
        )
    finally:
        page.close()
