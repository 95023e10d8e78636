"""FOCUS 1.3 export: BilledCost sums to the chargeback report's spend to the micro."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from keeptrusts_authz.money import MICROS_PER_UNIT
from keeptrusts_authz.reports.focus import COLUMNS, to_focus_csv
from keeptrusts_authz.reports.render import chargeback_report
from tests.observability.support import make_config, run, services
from tests.reports.test_chargeback import _fixed_history, _fixed_report


def _micros(text: str) -> int:
    value = Decimal(text) * MICROS_PER_UNIT
    assert value == value.to_integral_value(), text
    return int(value)


def test_focus_totals_equal_chargeback_to_the_micro(redis_url: str) -> None:
    report = _fixed_report(redis_url)
    rows = list(csv.DictReader(io.StringIO(to_focus_csv(report))))
    assert tuple(rows[0].keys()) == COLUMNS
    billed = sum(_micros(r["BilledCost"]) for r in rows)
    assert billed == report.totals.spent == report.ledger.spent
    assert sum(_micros(r["EffectiveCost"]) for r in rows) == report.totals.spent
    assert sum(_micros(r["x_EstimatedCost"]) for r in rows) == report.totals.spent_estimated
    assert sum(int(r["x_ReservationCount"]) for r in rows) == report.totals.requests
    for r in rows:
        assert r["ChargeCategory"] == "Usage"
        assert r["ServiceCategory"] == "AI and Machine Learning"
        assert r["ServiceSubcategory"] == "Generative AI"
        assert r["BillingCurrency"] == "USD"
        assert r["ChargePeriodStart"] < r["ChargePeriodEnd"]
        assert r["BillingPeriodStart"] <= r["ChargePeriodStart"]
        assert r["ChargePeriodEnd"] <= r["BillingPeriodEnd"]
        tags = json.loads(r["Tags"])
        assert set(tags) == {"team", "group", "user"}
    # the org backstop paid 0.25 of team_eng's spend: the cascade moved it, FOCUS says so
    moved = [r for r in rows if r["x_Wallet"] == "org" and r["SubAccountId"] == "team_eng"]
    assert [_micros(r["BilledCost"]) for r in moved] == [250_000]
    assert moved[0]["AllocatedMethodId"] == "keeptrusts-wallet-cascade"
    assert moved[0]["AllocatedResourceId"] == "team:team_eng"
    own = [r for r in rows if r["x_Wallet"] == "team:team_support"]
    assert own and all(r["AllocatedMethodId"] == "" for r in own)
    estimated = [r for r in rows if r["SkuId"] == "gpt-4o-mini"]
    assert estimated[0]["x_EstimatedShare"] == "1.0000"


def test_focus_through_the_api_function(redis_url: str) -> None:
    cfg = make_config(redis_url)

    async def go() -> tuple[str, bytes]:
        async with services(cfg) as (svc, _):
            await _fixed_history(svc)
            month = datetime.now(UTC).strftime("%Y-%m")
            return await chargeback_report(svc, month, "focus", "team")

    ctype, body = run(go())
    assert ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert (
        sum(_micros(r["BilledCost"]) for r in rows) == 1_500_000 + 333_333 + 700_000 + 250_000 + 10
    )
