"""`keeptrusts-authz report`: the chargeback/showback report of a period, from the ledger.

    keeptrusts-authz report --period 2026-11 [--from 2026-11-01 --to 2026-11-15]
        --format csv|json|html|focus|focus-parquet [--output FILE]
        [--group-by team|consumer_group|model|user]

`--format focus --output x.parquet` writes the FOCUS rows as Parquet (the `parquet` extra).

Exit codes: 0 ok, 1 the rows do not reconcile with the ledger (report still written), 2 bad input,
3 store unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from keeptrusts_authz.cli import api_client, output
from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.errors import InvalidInput, StoreUnavailable
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.periods.budgets import calendar_of
from keeptrusts_authz.reports.chargeback import (
    GROUP_BYS,
    LedgerSource,
    build_report,
    parse_period,
)
from keeptrusts_authz.reports.render import FORMATS, render
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.history import MergedHistory

EXIT_OK = 0
EXIT_UNRECONCILED = 1
EXIT_BAD_INPUT = 2
EXIT_STORE = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="chargeback report of a period from the ledger (csv, json, html or FOCUS 1.3 csv)",
        description="Per-team allocation, transfers, reclaims, spend (real vs estimated), "
        "org-backstop spend, blocked/held counts and remaining funds, reconciled to the micro "
        "with the ledger.",
    )
    p.add_argument("--config", metavar="FILE", default=None, help="default: $KEEPTRUSTS_CONFIG")
    p.add_argument(
        "--period",
        metavar="ID",
        help="2026-12 (month), 2027-Q1 (fiscal quarter), 2026-W49 (ISO week), 2026-12-01 (day), "
        "2027 (fiscal year), in budget_calendar's time zone",
    )
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (UTC)")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day, inclusive")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--group-by", choices=GROUP_BYS, default="team")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if api_client.handles(args):  # KEEPTRUSTS_API_URL set: GET /v1/reports/chargeback
        return api_client.run(args)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.format == "focus" and args.output and args.output.endswith(".parquet"):
        args.format = "focus-parquet"  # the FOCUS rows, as Parquet (the `parquet` extra)
    try:
        period = parse_period(args.period, args.date_from, args.date_to, calendar=calendar_of(cfg))
    except InvalidInput as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    async def go() -> tuple[str, bytes, list[str]]:
        store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
        url = cfg.ledger.postgres_url
        # With archiving on, history is PostgreSQL merged with the (trimmed) Redis tail.
        source: LedgerSource = MergedHistory(store, ArchiveStore(url)) if url else store
        try:
            report = await build_report(
                source,
                period,
                args.group_by,
                currency=cfg.organization.currency,
                org=cfg.organization.id,
            )
        finally:
            await store.close()
        ctype, body = render(report, args.format)
        return ctype, body, report.check()

    try:
        _ctype, body, problems = asyncio.run(go())
    except StoreUnavailable as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_STORE
    except InvalidInput as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output:
        output.write_atomic(args.output, body)
        print(f"wrote {args.output} ({period.label}, by {args.group_by})", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    for problem in problems:
        print(f"error: report does not reconcile with the ledger: {problem}", file=sys.stderr)
    return EXIT_UNRECONCILED if problems else EXIT_OK


__all__ = ["register", "run"]
