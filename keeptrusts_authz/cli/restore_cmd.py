"""`keeptrusts-authz restore`: rebuild the organization's books in Redis from PostgreSQL's archived
ledger (wallets/restore.py) and re-arm the store, book the settlement journal's charges the
rebuilt books lack, then audit.

Refuses a store that is not regressed unless `--force`; running it again is harmless (the same
archive gives the same books). Holds the org's archive lock while it works, so no archiver pass
copies a half-restored stream. Exit codes: 0 restored and audit ok, 1 restored but the audit
failed, 2 bad config or usage, 3 Redis or PostgreSQL unreachable, 4 refused.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import sys
import time
from typing import Any

import psycopg

from keeptrusts_authz.cli.output import print_config_errors
from keeptrusts_authz.config.loader import ConfigError, load_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.errors import RestoreRefused, StoreUnavailable
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.archiver import archive_lock_key
from keeptrusts_authz.ledger.journal import PostgresJournal
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import AuditReport
from keeptrusts_authz.wallets.restore import RestoreReport
from keeptrusts_authz.wallets.service import WalletService

LOCK_WAIT_SECONDS = 30.0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:{os.environ.get('USER') or os.getuid()}"


async def _locked(url: str, org: str) -> psycopg.AsyncConnection[Any]:
    """A connection holding the org's archive lock (waits for a running archiver pass)."""
    conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(url, autocommit=True)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (archive_lock_key(org),))
        row = await cur.fetchone()
        if row is not None and row[0]:
            return conn
        if time.monotonic() > deadline:
            await conn.close()
            raise RestoreRefused(
                f"the archive lock of organization {org} stayed taken for "
                f"{LOCK_WAIT_SECONDS:.0f} s (another restore or a stuck archiver)",
                {"reason": "archive_locked"},
            )
        await asyncio.sleep(0.2)


async def restore(cfg: Config, *, force: bool) -> tuple[RestoreReport, AuditReport]:
    url = cfg.ledger.postgres_url
    assert url is not None
    org = cfg.organization.id
    archive = ArchiveStore(url)
    store = RedisWalletStore.from_settings(cfg.redis, org)
    try:
        svc = WalletService(store, cfg, archive=archive)
        lock = await _locked(url, org)
        try:
            report = await svc.restore(archive, force=force, journal=PostgresJournal(url))
            await archive.record_restore(
                org,
                epoch=report.epoch,
                high_water=report.high_water,
                reason=report.reason,
                actor=_actor(),
                report=dataclasses.asdict(report),
            )
        finally:
            await lock.close()
        audit = await svc.audit(archive)
        return report, audit
    finally:
        await store.close()


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print_config_errors(exc)
        return 2
    if cfg.ledger.postgres_url is None:
        print(
            "keeptrusts-authz: restore rebuilds Redis from PostgreSQL's archived ledger: "
            "ledger.postgres_url is not set (nor KEEPTRUSTS_POSTGRES_URL)",
            file=sys.stderr,
        )
        return 2
    try:
        report, audit = asyncio.run(restore(cfg, force=args.force))
    except RestoreRefused as exc:
        print(f"restore refused: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": {"type": exc.code, "message": exc.message, **exc.details}}))
        return 4
    except StoreUnavailable as exc:
        print(f"keeptrusts-authz: {exc.message}", file=sys.stderr)
        return 3
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"keeptrusts-authz: PostgreSQL unreachable: {reason}", file=sys.stderr)
        return 3
    if args.json:
        out = dataclasses.asdict(report)
        out["audit"] = {"ok": audit.ok, "entries": audit.entries, "mismatches": audit.mismatches}
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(
            f"restored organization {cfg.organization.id} ({report.reason}): "
            f"{report.wallets} wallets and {report.open_reservations} open reservations from "
            f"{report.entries} ledger entries ({report.archived_entries} archived up to "
            f"{report.high_water}, {report.carried} unarchived carried over, "
            f"{report.rewritten} with a corrected balance_after) in {report.seconds:.2f} s; "
            f"new epoch {report.epoch}"
        )
        for why in report.dropped:
            print(f"  dropped {why}")
        print(
            f"  settlement journal: {report.journal_rows} row(s) read, {report.recovered} "
            f"charge(s) the lost store had not kept booked now "
            f"({format_micros(report.recovered_micros)} {cfg.organization.currency})"
        )
        for why in report.unrecovered:
            print(f"  NOT recovered {why}")
        if report.open_reservations:
            print(
                f"  {report.open_reservations} reservation(s) open at loss time restored open: "
                "their settlements close them, the sweeper charges the rest at their estimate"
            )
        state = "ok" if audit.ok else f"FAILED ({len(audit.mismatches)} mismatch(es))"
        print(f"audit {state}: {audit.entries} ledger entries replayed")
        for line in audit.mismatches:
            print(f"  {line}")
    return 0 if audit.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "restore",
        help="rebuild the wallets in Redis from PostgreSQL's archived ledger after a store loss",
    )
    p.add_argument("--config", help="config file (default: $KEEPTRUSTS_CONFIG)")
    p.add_argument(
        "--force", action="store_true", help="restore even though the store is not regressed"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run)
