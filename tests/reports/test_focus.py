"""FOCUS 1.3 export: BilledCost sums to the chargeback report's spend to the micro."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

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


def test_focus_parquet_reads_back_and_reconciles(redis_url: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from keeptrusts_authz.reports.focus import to_focus_parquet

    report = _fixed_report(redis_url)
    table = pq.read_table(io.BytesIO(to_focus_parquet(report)))
    assert tuple(table.column_names) == COLUMNS
    assert table.schema.field("BilledCost").type == pa.decimal128(38, 6)
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("x_ReservationCount").type == pa.int64()
    parquet = table.to_pylist()
    billed = sum(int(r["BilledCost"] * MICROS_PER_UNIT) for r in parquet)
    assert billed == report.totals.spent == report.ledger.spent
    assert sum(int(r["x_EstimatedCost"] * MICROS_PER_UNIT) for r in parquet) == (
        report.totals.spent_estimated
    )
    assert sum(r["x_ReservationCount"] for r in parquet) == report.totals.requests
    # The same rows as the CSV, cell for cell.
    rows = list(csv.DictReader(io.StringIO(to_focus_csv(report))))
    assert len(rows) == len(parquet)
    for want, got in zip(rows, parquet, strict=True):
        assert Decimal(want["BilledCost"]) == got["BilledCost"]
        assert want["ChargePeriodStart"] == got["ChargePeriodStart"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert want["SkuId"] == (got["SkuId"] or "") and want["Tags"] == got["Tags"]


def test_cli_writes_focus_parquet(redis_url: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from keeptrusts_authz.cli.main import main as cli_main

    conf = tmp_path / "keeptrusts.yaml"
    conf.write_text(
        "organization: {id: acme, currency: USD}\n"
        "consumer_groups:\n"
        "- {name: engineering, api_key: kt_cg_eng, wallet_team_id: team_eng}\n"
        f"redis: {{url: '{redis_url}'}}\n"
    )
    cfg = make_config(redis_url)

    async def seed() -> None:
        async with services(cfg) as (svc, _):
            await _fixed_history(svc)

    run(seed())
    month = datetime.now(UTC).strftime("%Y-%m")
    base = ["report", "--config", str(conf), "--period", month]
    by_suffix = tmp_path / "x.parquet"
    assert cli_main([*base, "--format", "focus", "--output", str(by_suffix)]) == 0
    named = tmp_path / "named.bin"
    assert cli_main([*base, "--format", "focus-parquet", "--output", str(named)]) == 0
    csv_out = tmp_path / "x.csv"
    assert cli_main([*base, "--format", "focus", "--output", str(csv_out)]) == 0
    table = pq.read_table(by_suffix)
    assert table.equals(pq.read_table(named))
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text())))
    total = sum(_micros(r["BilledCost"]) for r in rows)
    assert total > 0
    assert sum(int(v * MICROS_PER_UNIT) for v in table.column("BilledCost").to_pylist()) == total
