"""`keeptrusts-authz periods status|run`: budget periods straight against Redis.

    keeptrusts-authz periods status [--now ISO8601] [--json]
    keeptrusts-authz periods run [--now ISO8601]

`run` applies every boundary due at `now` (default: the current time), oldest first; running it
twice changes nothing (period_rollover.lua applies once per wallet and period id). Exit codes:
0 ok, 1 a boundary was refused (org pool too small; retried on the next run), 2 bad input,
3 store unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.periods.budgets import (
    BoundaryResult,
    BudgetStatus,
    PeriodRunner,
    calendar_of,
    rules_of,
)
from keeptrusts_authz.store.observability import ObservabilityStore
from keeptrusts_authz.store.redis_store import RedisWalletStore

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_STORE = 0, 1, 2, 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("periods", help="budget periods: status, apply due boundaries")
    sub = p.add_subparsers(dest="periods_command", metavar="ACTION", required=True)
    st = sub.add_parser("status", help="each budget's current period, allocated, spent, next")
    st.add_argument("--now", metavar="ISO8601", help="as of this instant (default: now)")
    st.add_argument("--json", action="store_true")
    st.add_argument("--config", metavar="FILE", default=None)
    st.set_defaults(func=run_status)
    rn = sub.add_parser("run", help="apply every boundary due at --now (idempotent)")
    rn.add_argument("--now", metavar="ISO8601", help="default: the current time")
    rn.add_argument("--config", metavar="FILE", default=None)
    rn.set_defaults(func=run_boundaries)


def parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--now: {value[:40]!r} is not ISO 8601") from None
    if at.tzinfo is None:
        raise ValueError("--now: needs a UTC offset (e.g. 2027-01-01T00:00:05-05:00)")
    return at


def _status_json(s: BudgetStatus) -> dict[str, object]:
    a = s.applied if s.up_to_date else None
    return {
        "wallet": s.rule.wallet_id,
        "team_id": s.rule.team_id,
        "period": s.current.id,
        "kind": s.rule.kind,
        "rollover": s.rule.rollover,
        "applied": s.up_to_date,
        "last_applied_period": s.applied.period_id if s.applied else None,
        "allocated": format_micros(a.allocation if a else 0),
        "carried_in": format_micros(a.carried_in if a else 0),
        "returned": format_micros(a.returned if a else 0),
        "spent": format_micros(s.spent),
        "balance": format_micros(s.balance),
        "projected_spend": format_micros(s.projected_spend),
        "status": s.status,
        "next_boundary": s.next_boundary.isoformat(),
    }


def _go(args: argparse.Namespace, action: str) -> int:
    try:
        now = parse_now(args.now)
        cfg = load_config(args.config)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not cfg.budgets:
        print("no budgets configured (config `budgets:`)", file=sys.stderr)
        return EXIT_OK

    async def go() -> int:
        store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
        events = ObservabilityStore.from_settings(cfg.redis, cfg.organization.id)
        runner = PeriodRunner(store, calendar_of(cfg), rules_of(cfg), events=events)
        try:
            if action == "run":
                return _print_run(await runner.run(now))
            statuses = await runner.status(now)  # read-only: alerts are the service's
        finally:
            await store.close()
            await events.close()
        cur = cfg.organization.currency
        if args.json:
            print(json.dumps({"currency": cur, "budgets": [_status_json(s) for s in statuses]}))
            return EXIT_OK
        for s in statuses:
            d = _status_json(s)
            print(
                f"{d['wallet']:<28} {d['period']:<10} {'applied' if d['applied'] else 'DUE':<7} "
                f"allocated {d['allocated']} carried {d['carried_in']} returned {d['returned']} "
                f"spent {d['spent']} balance {d['balance']} {cur} projected {d['projected_spend']} "
                f"{d['status']} next {d['next_boundary']}"
            )
        return EXIT_OK

    try:
        return asyncio.run(go())
    except StoreUnavailable as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_STORE


def _print_run(results: list[BoundaryResult]) -> int:
    refused = False
    for r in results:
        print(f"{r.wallet_id:<28} {r.period_id:<10} {r.status:<12} {format_micros(r.delta)}")
        refused = refused or r.status == "insufficient"
    if not results:
        print("nothing due")
    return EXIT_REFUSED if refused else EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    return _go(args, "status")


def run_boundaries(args: argparse.Namespace) -> int:
    return _go(args, "run")
