"""Render a `Report` as CSV, JSON or one self-contained HTML file (inline CSS + inline SVG).

Amounts are exact decimal strings (`format_micros`: at least 2 decimals, more when the micros
need them), so the CSV totals row is the exact sum of the rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from html import escape
from typing import Any, Literal, Protocol

from keeptrusts_authz.errors import InvalidInput
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.periods.calendar import BudgetCalendar
from keeptrusts_authz.reports.chargeback import (
    GROUP_BYS,
    MONEY_COLUMNS,
    GroupBy,
    LedgerSource,
    Report,
    Row,
    build_report,
    parse_period,
)
from keeptrusts_authz.reports.focus import to_focus_csv, to_focus_parquet

Format = Literal["csv", "json", "html", "focus", "focus-parquet"]
FORMATS: tuple[Format, ...] = ("csv", "json", "html", "focus", "focus-parquet")
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "focus": "text/csv; charset=utf-8",
    "focus-parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def _cell(report: Report, row: Row, column: str) -> str:
    value: int = getattr(row, column)
    return format_micros(value) if column in MONEY_COLUMNS else str(value)


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = report.columns
    writer.writerow([report.group_by, *cols, "currency"])
    for row in [*report.rows, report.totals]:
        writer.writerow([row.key, *(_cell(report, row, c) for c in cols), report.currency])
    return buf.getvalue()


def _row_json(report: Report, row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {report.group_by: row.key}
    for c in report.columns:
        value = getattr(row, c)
        if c in MONEY_COLUMNS:
            out[c] = format_micros(value)
            out[c + "_micros"] = value
        else:
            out[c] = value
    return out


def to_json(report: Report) -> str:
    lt = report.ledger
    doc = {
        "organization": report.org,
        "period": report.period.label,
        "from": report.period.start.isoformat(),
        "to": report.period.end.isoformat(),
        "group_by": report.group_by,
        "currency": report.currency,
        "generated_at": report.generated_at.isoformat(),
        "columns": report.columns,
        "rows": [_row_json(report, r) for r in report.rows],
        "totals": _row_json(report, report.totals),
        "ledger_totals": {
            "credited_micros": lt.credited,
            "allocated_micros": lt.allocated,
            "reclaimed_micros": lt.reclaimed,
            "transferred_micros": lt.transferred,
            "spent_micros": lt.spent,
            "spent_estimated_micros": lt.spent_estimated,
            "ticket_funded_micros": lt.ticket_funded,
            "spend_entries": lt.spend_entries,
            "entries": lt.entries,
        },
        "org_remaining_micros": report.org_remaining,
        "daily_spend_micros": report.daily_spend,
        "reconciled": not report.check(),
        "notes": report.notes,
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#4b535d;margin:0 0 16px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
caption{text-align:left;color:#4b535d;padding:0 0 4px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
thead th,thead th:first-child{background:#f6f8fa}
tr.total td{font-weight:600;border-top:2px solid #1f2328}
.bar{display:inline-block;width:60px;height:8px;background:#eaeef2;vertical-align:middle;margin-right:6px}
.bar i{display:block;height:8px;background:#4e79a7}.bar i.over{background:#e15759}
.notes{color:#4b535d;font-size:12px}
svg text{font:11px system-ui,sans-serif;fill:#1f2328}
"""
# Column order: what finance reads first (remaining, % used) leads, each table fits 1400 px.
_BUDGET_COLUMNS = (
    "remaining",
    "used",
    "spent",
    "allocated",
    "transferred_in",
    "transferred_out",
    "reclaimed",
    "carried_in",
    "returned",
    "forgiven",
)
_USAGE_COLUMNS = (
    "spent",
    "spent_real",
    "spent_estimated",
    "org_backstop_spent",
    "ticket_funded_spent",
    "requests",
    "blocked",
    "held",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
)
_UNIT = 1_000_000


def report_decimals(report: Report) -> int:
    """One number of decimals for the whole HTML document: 2 when every amount in it is whole
    cents, else 6 (every amount exact either way, and all of them aligned)."""
    values = [
        getattr(row, c)
        for row in [*report.rows, report.totals]
        for c in report.columns
        if c in MONEY_COLUMNS
    ]
    values += [v for per_day in report.daily_spend.values() for v in per_day.values()]
    return 2 if all(v % 10_000 == 0 for v in values) else 6


def fixed(micros: int, dp: int) -> str:
    """`micros` with exactly `dp` decimals (0..6, half away from zero) and thousands commas."""
    unit = 10 ** (6 - dp)
    sign = "-" if micros < 0 else ""
    a = abs(micros)
    a = (a + unit // 2) // unit * unit
    whole, frac = divmod(a, _UNIT)
    text = f"{whole:,}"
    if dp:
        text += "." + f"{frac:06d}"[:dp]
    return ("-" if sign and a else "") + text


def nice_ticks(peak: int, intervals: int = 4) -> tuple[int, list[int]]:
    """Axis ticks for 0..peak micros at a round step (1, 2 or 5 x 10^k micros): (step, ticks)."""
    if peak <= 0:
        return 0, [0]
    raw = -(-peak // intervals)
    mag = 1
    while mag * 10 <= raw:
        mag *= 10
    step = next(f * mag for f in (1, 2, 5, 10) if f * mag >= raw)
    top = -(-peak // step) * step
    return step, list(range(0, top + 1, step))


def tick_label(value: int, step: int) -> str:
    """A tick with the decimals its step needs (step 50_000 micros -> 0.05, 0.10, ...)."""
    dp = 0
    while dp < 6 and step % 10 ** (6 - dp):
        dp += 1
    return fixed(value, dp)


def _funded(row: Row) -> int:
    return row.allocated + row.carried_in + row.transferred_in - row.transferred_out - row.reclaimed


def used_tenths(row: Row) -> int | None:
    """Spent as tenths of a percent of net funding; None when nothing was funded."""
    funded = _funded(row)
    if funded <= 0:
        return None
    return (row.spent * 1000 + funded // 2) // funded


def _svg_chart(report: Report, width: int = 960, height: int = 320) -> str:
    """Stacked bars of daily spend per row key; inline SVG, no script; rounded axis ticks."""
    days = report.period.days()
    keys = [r.key for r in report.rows if r.spent > 0]
    left, right, top, bottom = 80, 180, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(report.daily_spend.get(d, {}).values()) for d in days]
    step, ticks = nice_ticks(max(totals, default=0))
    scale = ticks[-1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="daily-spend" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>Daily spend per {escape(report.group_by)} ({escape(report.currency)})</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#57606a"/>',
    ]
    if scale > 0:
        for value in ticks:
            y = top + plot_h - plot_h * value / scale
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                'stroke="#d0d7de" stroke-dasharray="2,3"/>'
                f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(tick_label(value, step))}</text>"
            )
    n = max(1, len(days))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.8)
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(top + plot_h)
        for key in keys:
            micros = report.daily_spend.get(day, {}).get(key, 0)
            if micros <= 0 or scale <= 0:
                continue
            h = plot_h * micros / scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colors[key]}"><title>{escape(day)} {escape(key)}: '
                f"{escape(format_micros(micros))}</title></rect>"
            )
        if n <= 31 or i % max(1, n // 15) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                f'text-anchor="middle">{escape(day[-2:])}</text>'
            )
    for i, key in enumerate(keys[:20]):
        y = top + 4 + i * 16
        parts.append(
            f'<rect x="{left + plot_w + 16}" y="{y}" width="10" height="10" '
            f'fill="{colors[key]}"/><text x="{left + plot_w + 32}" y="{y + 9}">'
            f"{escape(key[:24])}</text>"
        )
    if not keys:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
            "No spend in this period</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(report: Report, table_id: str, caption: str, cols: list[str], dp: int) -> str:
    def label(c: str) -> str:
        return "% used" if c == "used" else c.replace("_", " ")

    def cell(row: Row, c: str) -> str:
        if c == "used":
            tenths = used_tenths(row)
            if tenths is None:
                return "<td>—</td>"
            over = ' class="over"' if tenths > 1000 else ""
            return (
                f'<td><span class="bar"><i{over} style="width:{min(tenths, 1000) // 10}%">'
                f"</i></span>{tenths // 10}.{tenths % 10}%</td>"
            )
        value: int = getattr(row, c)
        text = fixed(value, dp) if c in MONEY_COLUMNS else f"{value:,}"
        return f"<td>{escape(text)}</td>"

    def tr(row: Row, css: str = "") -> str:
        cls = f' class="{css}"' if css else ""
        cells = "".join(cell(row, c) for c in cols)
        return f"<tr{cls}><td>{escape(row.key)}</td>{cells}</tr>"

    head = "".join(f"<th>{escape(label(c))}</th>" for c in cols)
    body = "".join(tr(r) for r in report.rows) + tr(report.totals, "total")
    return (
        f'<div class="scroll"><table id="{table_id}"><caption>{escape(caption)}</caption>'
        f"<thead><tr><th>{escape(report.group_by.replace('_', ' '))}</th>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def to_html(report: Report) -> str:
    present = set(report.columns) | {"used"}
    funding = "allocated" in report.columns
    dp = report_decimals(report)
    cur = report.currency
    tables = []
    if funding:
        budget = [c for c in _BUDGET_COLUMNS if c in present]
        tables.append(_html_table(report, "chargeback", f"Budget ({cur})", budget, dp))
    usage = [c for c in _USAGE_COLUMNS if c in present]
    usage_id = "chargeback-usage" if funding else "chargeback"
    tables.append(_html_table(report, usage_id, f"Usage ({cur}; tokens)", usage, dp))
    problems = report.check()
    status = (
        "reconciled with the ledger" if not problems else "NOT reconciled: " + "; ".join(problems)
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    title = f"Chargeback {report.period.label}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">Organization {escape(report.org)} · {escape(cur)}, {dp} decimals · '
        f"{escape(report.period.start.date().isoformat())} to "
        f"{escape(report.period.end.date().isoformat())} (exclusive, UTC) · "
        f"by {escape(report.group_by.replace('_', ' '))} · totals {escape(status)} · "
        f"generated {escape(report.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}</p>"
        f"<h2>Allocation vs spent</h2>{''.join(tables)}"
        f"<h2>Daily spend per {escape(report.group_by.replace('_', ' '))} ({escape(cur)})</h2>"
        f"{_svg_chart(report)}"
        f'<p class="notes">Amounts in {escape(cur)}. Remaining = balance + reserved at the end '
        "of the period. % used = spent / (allocated + carried in + transferred in - "
        "transferred out - reclaimed). Spent = settled real cost + estimated (no usage "
        "reported, or reservation expired). Org backstop = spend charged to the org wallet. "
        "Ticket funded = spend of requests an approved cost ticket funded."
        f"</p><ul class=notes>{notes}</ul></body></html>\n"
    )


def render(report: Report, fmt: str) -> tuple[str, bytes]:
    if fmt == "csv":
        return CONTENT_TYPES["csv"], to_csv(report).encode()
    if fmt == "json":
        return CONTENT_TYPES["json"], to_json(report).encode()
    if fmt == "html":
        return CONTENT_TYPES["html"], to_html(report).encode()
    if fmt == "focus":
        return CONTENT_TYPES["focus"], to_focus_csv(report).encode()
    if fmt == "focus-parquet":
        return CONTENT_TYPES["focus-parquet"], to_focus_parquet(report)
    raise InvalidInput(f"format: one of {', '.join(FORMATS)}", {"field": "format"})


class _HasStore(Protocol):
    @property
    def history(self) -> LedgerSource: ...

    @property
    def org_id(self) -> str: ...

    @property
    def currency(self) -> str: ...


def chargeback_report(
    wallets_service: _HasStore,
    period: str | None,
    fmt: str = "csv",
    group_by: str = "team",
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    calendar: BudgetCalendar | None = None,
) -> Awaitable[tuple[str, bytes]]:
    """For the API (`GET /v1/reports/chargeback?period=…&format=csv`): (content type, body).

    Validation errors raise `InvalidInput` (HTTP 400) before any I/O; store outages raise
    `StoreUnavailable` (503). Awaitable: `ctype, body = await chargeback_report(svc, ...)`.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"format: one of {', '.join(FORMATS)}", {"field": "format"})
    if group_by not in GROUP_BYS:
        raise InvalidInput(f"group_by: one of {', '.join(GROUP_BYS)}", {"field": "group_by"})
    p = parse_period(period, date_from, date_to, calendar=calendar)
    gb: GroupBy = group_by

    async def go() -> tuple[str, bytes]:
        report = await build_report(
            wallets_service.history,
            p,
            gb,
            currency=wallets_service.currency,
            org=wallets_service.org_id,
            now=datetime.now(UTC),
        )
        return render(report, fmt)

    return go()


__all__ = ["CONTENT_TYPES", "FORMATS", "chargeback_report", "render", "to_csv", "to_html"]
