"""FOCUS 1.3 (FinOps Open Cost and Usage Specification) CSV of a `Report`'s spend.

One row per (charge day, team, consumer group, model, user, paying wallet), built in the same
ledger pass as the chargeback rows (`Report.focus`), so the BilledCost column sums to the
report's `spent` total to the micro. Amounts are exact decimal strings from integer micros.

The gateway is an internal showback: list, effective, billed and contracted cost are the same
charged amount (no discounts or commitments are modelled). `ResourceId`/`x_Wallet` name the
wallet that paid; when the wallet cascade charged a wallet other than the team's own (a user
wallet or the org backstop), `AllocatedMethodId`/`AllocatedResourceId` name the cascade and the
team the cost is allocated to. The ledger does not record the upstream provider, so
`HostProviderName` is empty. Columns FOCUS lacks carry the `x_` prefix.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from keeptrusts_authz.errors import InvalidInput
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.reports.chargeback import FocusCell, FocusKey, Report

SERVICE_NAME = "Keeptrusts LLM Gateway"
SERVICE_PROVIDER = "Keeptrusts"
CASCADE_METHOD = "keeptrusts-wallet-cascade"

COLUMNS = (
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ServiceCategory",
    "ServiceSubcategory",
    "ServiceName",
    "ServiceProviderName",
    "HostProviderName",
    "SkuId",
    "ResourceId",
    "ResourceName",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "AllocatedMethodId",
    "AllocatedResourceId",
    "x_Wallet",
    "x_ConsumerGroup",
    "x_User",
    "x_ReservationCount",
    "x_EstimatedCost",
    "x_EstimatedShare",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CachedTokens",
    "x_TicketFundedCost",
)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _share(part: int, whole: int) -> str:
    """part/whole as a 4-decimal fraction, computed in integers (half up)."""
    if whole <= 0:
        return "0.0000"
    tenths_of_bp = (part * 10_000 * 2 + whole) // (2 * whole)
    return f"{tenths_of_bp // 10_000}.{tenths_of_bp % 10_000:04d}"


def _row(report: Report, key: FocusKey, cell: FocusCell) -> list[str]:
    day, team, group, model, user, wallet = key
    start = max(datetime.fromisoformat(day).replace(tzinfo=UTC), report.period.start)
    end = min(start.replace(hour=0) + timedelta(days=1), report.period.end)
    amount = format_micros(cell.cost)
    tokens = cell.input_tokens + cell.output_tokens
    own_wallet = f"team:{team}" if team else ""
    moved = wallet != own_wallet and bool(team)
    tags = {"team": team, "group": group, "user": user}
    return [
        report.org,
        report.org,
        report.currency,
        _ts(report.period.start),
        _ts(report.period.end),
        _ts(start),
        _ts(end),
        "Usage",
        "",
        f"LLM usage: {model or 'unknown model'} for {team or 'no team'}"
        + (f" / {group}" if group else ""),
        "Usage-Based",
        amount,
        amount,
        amount,
        amount,
        str(tokens),
        "Tokens",
        str(tokens),
        "Tokens",
        "AI and Machine Learning",
        "Generative AI",
        SERVICE_NAME,
        SERVICE_PROVIDER,
        "",
        model,
        wallet,
        wallet,
        team,
        team,
        json.dumps(tags, sort_keys=True, separators=(",", ":")),
        CASCADE_METHOD if moved else "",
        own_wallet if moved else "",
        wallet,
        group,
        user,
        str(cell.reservations),
        format_micros(cell.estimated),
        _share(cell.estimated, cell.cost),
        str(cell.input_tokens),
        str(cell.output_tokens),
        str(cell.cached_tokens),
        format_micros(cell.ticket_funded),
    ]


def to_focus_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for key, cell in report.focus.items():
        writer.writerow(_row(report, key, cell))
    return buf.getvalue()


# Parquet column types (everything else is a string): money as decimal(38, 6), exact like the
# CSV's decimal strings; FOCUS date-times as UTC timestamps; counts as int64.
PARQUET_MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "x_EstimatedCost")
PARQUET_TIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
PARQUET_INTS = (
    "ConsumedQuantity",
    "PricingQuantity",
    "x_ReservationCount",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CachedTokens",
)
PARQUET_EXTRA = "pip install 'keeptrusts-authz[parquet]'"


def to_focus_parquet(report: Report) -> bytes:
    """The same rows as `to_focus_csv`, as one Parquet file (needs the `parquet` extra)."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise InvalidInput(
            f"format: focus-parquet needs pyarrow ({PARQUET_EXTRA})", {"field": "format"}
        ) from None
    rows = [_row(report, key, cell) for key, cell in report.focus.items()]
    columns: dict[str, list[Any]] = {name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)}
    fields = []
    arrays = []
    for name, values in columns.items():
        if name in PARQUET_MONEY:
            typ = pa.decimal128(38, 6)
            data: list[Any] = [Decimal(v) for v in values]
        elif name == "x_EstimatedShare":
            typ = pa.decimal128(9, 4)
            data = [Decimal(v) for v in values]
        elif name in PARQUET_TIMES:
            typ = pa.timestamp("ms", tz="UTC")  # Parquet has no seconds unit
            data = [datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for v in values]
        elif name in PARQUET_INTS:
            typ = pa.int64()
            data = [int(v) for v in values]
        else:
            typ = pa.string()
            data = [v if v != "" else None for v in values]
        fields.append(pa.field(name, typ))
        arrays.append(pa.array(data, type=typ))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


__all__ = ["COLUMNS", "to_focus_csv", "to_focus_parquet"]
