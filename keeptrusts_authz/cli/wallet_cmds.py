"""Wallet commands: credit, allocate, reclaim, transfer, balance, ledger, audit.

Config from --config or $KEEPTRUSTS_CONFIG; Redis from the config's `redis` section or $REDIS_URL.
Amounts are decimal strings in currency units (`1200`, `1200.50`). Human-readable tables by
default, `--json` for machines. Exit codes: 0 ok, 1 audit failed, 2 bad input or usage, 3 store
unreachable, 4 not found / insufficient funds / conflict.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from keeptrusts_authz.cli import api_client
from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.errors import (
    Conflict,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidInput,
    KeeptrustsError,
    StoreDataError,
    StoreUnavailable,
    UnknownWallet,
)
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.money import AmountError, format_micros, parse_amount
from keeptrusts_authz.periods.budgets import BudgetStatus, PeriodRunner, calendar_of, rules_of
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import LedgerEntry, OpResult, Wallet
from keeptrusts_authz.wallets.service import WalletService

EXIT_OK = 0
EXIT_AUDIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_STORE = 3
EXIT_REFUSED = 4

Action = Callable[[WalletService, Config, argparse.Namespace], Awaitable[int]]


class _BadInput(Exception):
    """Bad command-line input found before the store is contacted."""


# -- argument parsing ----------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", default=None, help="config file (default: $KEEPTRUSTS_CONFIG)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _move(p: argparse.ArgumentParser, default_description: str) -> None:
    p.add_argument("--amount", required=True, help="decimal amount in currency units, e.g. 1200")
    p.add_argument(
        "--currency", default=None, help="must be the organization currency (default: it)"
    )
    p.add_argument("--description", default=default_description, help="ledger description")
    p.add_argument(
        "--idempotency-key",
        default=None,
        metavar="KEY",
        help="retry-safe key: repeating the same request with it moves nothing the second time",
    )
    _common(p)


def _target(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--team", metavar="TEAM_ID", help="team wallet (wallet_team_id)")
    g.add_argument("--user", metavar="USER_ID", help="user wallet")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("credit", help="add money to the organization pool")
    _move(p, "Org credit")
    p.set_defaults(func=lambda a: _run(a, _credit))

    p = subparsers.add_parser("allocate", help="fund a team or user wallet from the org pool")
    _target(p)
    p.add_argument(
        "--user-team",
        metavar="TEAM_ID",
        help="with --user: the team the user belongs to (needed on its first allocation when "
        "several teams are configured)",
    )
    _move(p, "Allocation")
    p.set_defaults(func=lambda a: _run(a, _allocate))

    p = subparsers.add_parser("reclaim", help="return available team/user funds to the org pool")
    _target(p)
    _move(p, "Reclaim")
    p.set_defaults(func=lambda a: _run(a, _reclaim))

    p = subparsers.add_parser("transfer", help="move available funds between two wallets")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-team", metavar="TEAM_ID")
    src.add_argument("--from-user", metavar="USER_ID")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to-team", metavar="TEAM_ID")
    dst.add_argument("--to-user", metavar="USER_ID")
    _move(p, "Transfer")
    p.set_defaults(func=lambda a: _run(a, _transfer))

    p = subparsers.add_parser("balance", help="show every wallet, or one")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--team", metavar="TEAM_ID")
    g.add_argument("--user", metavar="USER_ID")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, _balance))

    p = subparsers.add_parser("ledger", help="show the latest ledger entries (newest first)")
    p.add_argument("--limit", type=int, default=50, help="number of entries (default 50)")
    p.add_argument("--wallet", default=None, help="only entries touching this wallet")
    p.add_argument("--before", default=None, metavar="ENTRY_ID", help="page: entries older")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, _ledger))

    p = subparsers.add_parser(
        "audit", help="replay the ledger and compare it with every wallet (exit 1 on a mismatch)"
    )
    _common(p)
    p.add_argument(
        "--full",
        action="store_true",
        help="replay PostgreSQL's archived ledger from genesis instead of the last checkpoint",
    )
    p.set_defaults(func=lambda a: _run(a, _audit))


# -- running ----------


def _actor() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = os.environ.get("USER") or str(os.getuid())
    return f"cli:{name}"


def _err(args: argparse.Namespace, code: str, message: str, exit_code: int, **details: Any) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json({"error": {"code": code, "message": message, "details": details}})
    return exit_code


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _run(args: argparse.Namespace, action: Action) -> int:
    if api_client.handles(args):  # KEEPTRUSTS_API_URL set: money commands via the wallet API
        return api_client.run(args)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _err(args, "config", str(exc), EXIT_BAD_INPUT)

    async def go() -> int:
        store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
        try:
            url = cfg.ledger.postgres_url
            # With archiving on, listings read PostgreSQL merged with the Redis tail.
            archive = ArchiveStore(url) if url is not None else None
            return await action(WalletService(store, cfg, archive=archive), cfg, args)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except (_BadInput, AmountError) as exc:
        return _err(args, "invalid_input", str(exc), EXIT_BAD_INPUT)
    except StoreUnavailable as exc:
        return _err(args, exc.code, exc.message, EXIT_STORE)
    except psycopg.OperationalError as exc:
        # First line only: host, port and reason, never the URL's password.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _err(args, "archive_unavailable", f"PostgreSQL: {reason}", EXIT_STORE)
    except (InvalidInput, CurrencyMismatch) as exc:
        return _err(args, exc.code, exc.message, EXIT_BAD_INPUT, **exc.details)
    except (UnknownWallet, InsufficientFunds, Conflict) as exc:
        return _err(args, exc.code, exc.message, EXIT_REFUSED, **exc.details)
    except KeeptrustsError as exc:
        return _err(args, exc.code, exc.message, EXIT_AUDIT_FAILED, **exc.details)
    except StoreDataError as exc:
        return _err(args, "store_data", str(exc), EXIT_AUDIT_FAILED)
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error; keep Python quiet at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _wallet_arg(team: str | None, user: str | None) -> str | None:
    if team is not None:
        team = team.removeprefix("team:")
        if not team:
            raise _BadInput("--team: must not be empty")
        return f"team:{team}"
    if user is not None:
        user = user.removeprefix("user:")
        if not user:
            raise _BadInput("--user: must not be empty")
        return f"user:{user}"
    return None


def _amount(args: argparse.Namespace) -> int:
    return parse_amount(args.amount, field="--amount")


def _currency(args: argparse.Namespace, cfg: Config) -> str:
    return str(args.currency) if args.currency is not None else cfg.organization.currency


# -- output ----------


def _money(micros: int, currency: str) -> str:
    return f"{format_micros(micros)} {currency}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _op_json(res: OpResult, currency: str) -> dict[str, Any]:
    return {
        "op": res.op,
        "entry_id": res.entry_id,
        "replayed": res.replayed,
        "currency": currency,
        "balances": {w: format_micros(b) for w, b in res.balances.items()},
        "balances_micros": dict(res.balances),
    }


def _print_op(args: argparse.Namespace, res: OpResult, summary: str, currency: str) -> int:
    if args.json:
        _print_json(_op_json(res, currency))
        return EXIT_OK
    print(summary + (" (idempotent replay: nothing moved this time)" if res.replayed else ""))
    for wid, bal in res.balances.items():
        print(f"  {wid}: balance {_money(bal, currency)}")
    print(f"  ledger entry {res.entry_id}")
    return EXIT_OK


def _wallet_json(w: Wallet, currency: str) -> dict[str, Any]:
    return {
        "id": w.id,
        "scope": w.scope,
        "owner": w.owner,
        "currency": currency,
        "balance": format_micros(w.balance),
        "reserved": format_micros(w.reserved),
        "allocated_total": format_micros(w.allocated_total),
        "spent_total": format_micros(w.spent_total),
        "balance_micros": w.balance,
        "reserved_micros": w.reserved,
        "allocated_total_micros": w.allocated_total,
        "spent_total_micros": w.spent_total,
        "status": w.status,
    }


def _entry_json(e: LedgerEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "ts_ms": e.ts_ms,
        "op": e.op,
        "wallet": e.wallet,
        "amount": format_micros(e.amount),
        "amount_micros": e.amount,
        "fields": e.fields,
    }


def _entry_detail(e: LedgerEntry) -> str:
    f = e.fields
    parts: list[str] = []
    if "from" in f and "to" in f:
        parts.append(f"{f['from']} -> {f['to']}")
    if f.get("reservation"):
        parts.append(f"reservation {f['reservation']}")
    if f.get("estimated") == "1":
        parts.append("estimated")
    if f.get("overdraft") == "1":
        parts.append("overdraft")
    if f.get("description"):
        parts.append(f["description"])
    return "; ".join(parts)


# -- commands ----------


async def _credit(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.credit(amount, currency, args.description, _actor(), args.idempotency_key)
    return _print_op(args, res, f"credited {_money(amount, svc.currency)} to org", svc.currency)


async def _allocate(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = _wallet_arg(args.team, args.user)
    assert wallet is not None
    amount, currency = _amount(args), _currency(args, cfg)
    user_team = getattr(args, "user_team", None)
    if user_team is not None and args.user is None:
        raise _BadInput("--user-team: only with --user")
    res = await svc.allocate(
        wallet,
        amount,
        currency,
        args.description,
        _actor(),
        args.idempotency_key,
        team=user_team.removeprefix("team:") if user_team else None,
    )
    return _print_op(
        args, res, f"allocated {_money(amount, svc.currency)} from org to {wallet}", svc.currency
    )


async def _reclaim(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = _wallet_arg(args.team, args.user)
    assert wallet is not None
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.reclaim(
        wallet, amount, currency, args.description, _actor(), args.idempotency_key
    )
    return _print_op(
        args, res, f"reclaimed {_money(amount, svc.currency)} from {wallet} to org", svc.currency
    )


async def _transfer(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    src = _wallet_arg(args.from_team, args.from_user)
    dst = _wallet_arg(args.to_team, args.to_user)
    assert src is not None and dst is not None
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.transfer(
        src, dst, amount, currency, args.description, _actor(), args.idempotency_key
    )
    return _print_op(
        args, res, f"transferred {_money(amount, svc.currency)} from {src} to {dst}", svc.currency
    )


async def _budget_periods(cfg: Config) -> dict[str, BudgetStatus]:
    if not cfg.budgets:
        return {}
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    try:
        runner = PeriodRunner(store, calendar_of(cfg), rules_of(cfg))
        return {s.rule.wallet_id: s for s in await runner.status()}
    finally:
        await store.close()


def _status_of(w: Wallet, period: BudgetStatus | None) -> str:
    """The wallet's status; `at_risk` when healthy now but projected past its period's funds."""
    if period is not None and w.status == "healthy" and period.status == "at_risk":
        return "at_risk"
    return w.status


async def _balance(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = _wallet_arg(args.team, args.user)
    wallets = [await svc.wallet(wallet)] if wallet else await svc.wallets()
    cur = svc.currency
    periods = await _budget_periods(cfg)
    if args.json:
        docs = []
        for w in wallets:
            doc = _wallet_json(w, cur)
            p = periods.get(w.id)
            if p is not None:
                doc["status"] = _status_of(w, p)
                doc["period"] = p.current.id
                doc["period_allocation"] = format_micros(p.funded)
                doc["projected_period_spend"] = format_micros(p.projected_spend)
            docs.append(doc)
        _print_json({"currency": cur, "wallets": docs})
        return EXIT_OK
    if not wallets:
        print("no wallets yet (credit the org pool, then allocate to teams)")
        return EXIT_OK
    rows = [
        [
            w.id,
            _money(w.balance, cur),
            _money(w.reserved, cur),
            _money(w.allocated_total, cur),
            _money(w.spent_total, cur),
            _status_of(w, periods.get(w.id)),
        ]
        for w in wallets
    ]
    print(
        _table(
            ["WALLET", "BALANCE", "RESERVED", "ALLOCATED", "SPENT", "STATUS"], rows, {1, 2, 3, 4}
        )
    )
    return EXIT_OK


async def _ledger(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = args.wallet
    if wallet is not None and wallet != "org" and ":" not in wallet:
        wallet = f"team:{wallet}"
    if args.limit <= 0:
        raise _BadInput("--limit: must be a positive number")
    entries = await svc.ledger(args.limit, before=args.before, wallet=wallet)
    if args.json:
        _print_json({"currency": svc.currency, "entries": [_entry_json(e) for e in entries]})
        return EXIT_OK
    if not entries:
        print("the ledger is empty" if wallet is None else f"no ledger entries for {wallet}")
        return EXIT_OK
    rows = [
        [
            e.id,
            datetime.fromtimestamp(e.ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.op,
            e.wallet,
            _money(e.amount, svc.currency),
            e.fields.get("actor", ""),
            _entry_detail(e),
        ]
        for e in entries
    ]
    print(_table(["ID", "TIME (UTC)", "OP", "WALLET", "AMOUNT", "ACTOR", "DETAIL"], rows, {4}))
    return EXIT_OK


async def _audit(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    url = cfg.ledger.postgres_url
    archive = ArchiveStore(url) if url is not None else None
    if args.full and archive is None:
        raise _BadInput("--full replays PostgreSQL from genesis: ledger.postgres_url is not set")
    report = await svc.audit(archive, full=args.full)
    if args.json:
        _print_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "wallets": report.wallets,
                "open_reservations": report.open_reservations,
                "mismatches": report.mismatches,
            }
        )
    elif report.ok:
        print(
            f"audit ok: {report.entries} ledger entries replayed; {report.wallets} wallets and "
            f"{report.open_reservations} open reservations match"
        )
    else:
        print(
            f"audit FAILED: {len(report.mismatches)} mismatch(es) after replaying "
            f"{report.entries} ledger entries"
        )
        for line in report.mismatches:
            print(f"  {line}")
    return EXIT_OK if report.ok else EXIT_AUDIT_FAILED


__all__ = ["register"]
