"""Wallet commands: credit, allocate, reclaim, transfer, balance, ledger, tickets, audit.

Config from --config or $KEEPTRUSTS_CONFIG; Redis from the config's `redis` section or $REDIS_URL.
Amounts are decimal strings in currency units (`1200`, `1200.50`). Human-readable tables by
default, `--json` for machines: the documents of wallets/views.py (docs/schemas/), the same
keys whether the command reads Redis or goes through the wallet API (KEEPTRUSTS_API_URL).
Exit codes: 0 ok, 1 audit failed, 2 bad input or usage, 3 store
unreachable, 4 not found / insufficient funds / conflict.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from keeptrusts_authz.cli import api_client, output
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
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.store.tickets import RedisTicketStore
from keeptrusts_authz.wallets.models import OpResult, Wallet
from keeptrusts_authz.wallets.service import WalletService
from keeptrusts_authz.wallets.views import (
    balance_doc,
    cascade_summary,
    error_doc,
    known_or_empty,
    ledger_page_doc,
    move_doc,
    period_figures,
    ticket_list_doc,
    wallet_doc,
    wallet_list_doc,
)

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
    p.add_argument("--limit", type=int, default=50, help="number of entries, 1..500 (default 50)")
    p.add_argument("--wallet", default=None, help="only entries touching this wallet")
    p.add_argument("--before", default=None, metavar="ENTRY_ID", help="page: entries older")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, _ledger))

    p = subparsers.add_parser("tickets", help="list cost tickets opened by held requests")
    p.add_argument(
        "--status", choices=("pending", "approved", "denied", "funded", "used"), default=None
    )
    p.add_argument("--team", metavar="TEAM_ID", default=None, help="only this team's tickets")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, _tickets))

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
        output.print_json(error_doc(code, message, details))
    return exit_code


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


def _print_op(
    args: argparse.Namespace, res: OpResult, amount: int, currency: str, summary: str
) -> int:
    doc = move_doc(res, amount, currency, _actor())
    if args.json:
        output.print_json(doc)
    else:
        output.print_move(doc, summary)
    return EXIT_OK


# -- commands ----------


async def _credit(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.credit(amount, currency, args.description, _actor(), args.idempotency_key)
    return _print_op(
        args, res, amount, svc.currency, f"credited {_money(amount, svc.currency)} to org"
    )


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
    summary = f"allocated {_money(amount, svc.currency)} from org to {wallet}"
    return _print_op(args, res, amount, svc.currency, summary)


async def _reclaim(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = _wallet_arg(args.team, args.user)
    assert wallet is not None
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.reclaim(
        wallet, amount, currency, args.description, _actor(), args.idempotency_key
    )
    summary = f"reclaimed {_money(amount, svc.currency)} from {wallet} to org"
    return _print_op(args, res, amount, svc.currency, summary)


async def _transfer(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    src = _wallet_arg(args.from_team, args.from_user)
    dst = _wallet_arg(args.to_team, args.to_user)
    assert src is not None and dst is not None
    amount, currency = _amount(args), _currency(args, cfg)
    res = await svc.transfer(
        src, dst, amount, currency, args.description, _actor(), args.idempotency_key
    )
    summary = f"transferred {_money(amount, svc.currency)} from {src} to {dst}"
    return _print_op(args, res, amount, svc.currency, summary)


async def _budget_periods(cfg: Config) -> dict[str, BudgetStatus]:
    if not cfg.budgets:
        return {}
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    try:
        runner = PeriodRunner(store, calendar_of(cfg), rules_of(cfg))
        return {s.rule.wallet_id: s for s in await runner.status()}
    finally:
        await store.close()


async def _balance(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet_id = _wallet_arg(args.team, args.user)
    cur = svc.currency
    periods = await _budget_periods(cfg)
    burn = await svc.burn_window()
    records = {w.id: w for w in await svc.wallets()}

    def doc(w: Wallet) -> dict[str, Any]:
        return wallet_doc(w, cur, burn.per_day(w.id), period_figures(periods.get(w.id)))

    if wallet_id is None:
        listing = wallet_list_doc(cur, [doc(w) for w in records.values()])
        output.print_json(listing) if args.json else output.print_wallets(listing)
        return EXIT_OK
    wallet = known_or_empty(cfg, wallet_id, records.get(wallet_id))
    if wallet is None:
        raise UnknownWallet(f"unknown wallet {wallet_id}", {"wallet": wallet_id})
    team, user = (args.team or "").removeprefix("team:"), (args.user or "").removeprefix("user:")
    user_team = (await svc.user_teams()).get(user, "") if user else ""
    org = records.get("org")
    answer = balance_doc(
        cur,
        doc(wallet),
        doc(org) if org is not None else None,
        cascade_summary(cfg, team, user, records, user_team),
    )
    output.print_json(answer) if args.json else output.print_balance(answer)
    return EXIT_OK


async def _ledger(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    wallet = args.wallet
    if wallet is not None and wallet != "org" and ":" not in wallet:
        wallet = f"team:{wallet}"
    if not 1 <= args.limit <= 500:
        raise _BadInput("--limit: must be between 1 and 500")
    entries = await svc.ledger(args.limit, before=args.before, wallet=wallet)
    page = ledger_page_doc(svc.currency, entries, args.limit)
    output.print_json(page) if args.json else output.print_ledger(page, wallet)
    return EXIT_OK


async def _tickets(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    team = (args.team or "").removeprefix("team:") or None
    client = connect(cfg.redis)
    try:
        tickets = [
            t
            for t in await RedisTicketStore(client, cfg.organization.id).list()
            if (args.status is None or t.status == args.status) and (team is None or t.team == team)
        ]
    finally:
        await client.aclose()
    doc = ticket_list_doc(svc.currency, tickets)
    output.print_json(doc) if args.json else output.print_tickets(doc)
    return EXIT_OK


async def _audit(svc: WalletService, cfg: Config, args: argparse.Namespace) -> int:
    url = cfg.ledger.postgres_url
    archive = ArchiveStore(url) if url is not None else None
    if args.full and archive is None:
        raise _BadInput("--full replays PostgreSQL from genesis: ledger.postgres_url is not set")
    report = await svc.audit(archive, full=args.full)
    if args.json:
        output.print_json(
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
