"""`keeptrusts-authz db migrate`: apply the ledger's PostgreSQL schema migrations
(`ledger.postgres_url` or $KEEPTRUSTS_POSTGRES_URL). Exit 0 ok, 2 bad config, 3 unreachable."""

from __future__ import annotations

import argparse
import asyncio
import sys

import psycopg

from keeptrusts_authz.cli.output import print_config_errors
from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.ledger.schema import migrate


def _migrate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print_config_errors(exc)
        return 2
    url = cfg.ledger.postgres_url
    if url is None:
        print(
            "keeptrusts-authz: ledger.postgres_url is not set (nor KEEPTRUSTS_POSTGRES_URL): "
            "nothing to migrate",
            file=sys.stderr,
        )
        return 2
    try:
        applied = asyncio.run(migrate(url))
    except psycopg.OperationalError as exc:
        # The message names host/port and the reason, never the password.
        print(f"keeptrusts-authz: PostgreSQL unreachable: {_first_line(exc)}", file=sys.stderr)
        return 3
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("schema up to date")
    return 0


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="the ledger's PostgreSQL database")
    dbsub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    p = dbsub.add_parser("migrate", help="apply the shipped schema migrations not yet applied")
    p.add_argument("--config", help="config file (default: $KEEPTRUSTS_CONFIG)")
    p.set_defaults(func=_migrate)
