"""Human output of the CLI, rendered from the resource documents (wallets/views.py).

Both paths (straight to Redis, and through the wallet API with KEEPTRUSTS_API_URL) hold the same
documents, so they print the same tables from them: one renderer per resource, here. `--json`
prints the documents themselves (docs/schemas/*.schema.json).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keeptrusts_authz.config.loader import ConfigError

Doc = Mapping[str, Any]


def print_config_errors(exc: ConfigError) -> None:
    """A config that does not load: one `<file>: <path>: <problem>` line per error, on stderr."""
    for line in exc.errors:
        print(f"{exc.source}: {line}", file=sys.stderr)


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
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


def _money(doc: Doc, key: str) -> str:
    value = doc.get(key)
    return "" if value is None else f"{value} {doc.get('currency', '')}".rstrip()


def wallet_table(wallets: Sequence[Doc]) -> str:
    rows = [
        [
            str(w["id"]),
            _money(w, "balance"),
            _money(w, "reserved"),
            _money(w, "allocated_total"),
            _money(w, "spent_total"),
            _money(w, "burn_rate_per_day"),
            str(w["status"]),
            str(w.get("period") or ""),
        ]
        for w in wallets
    ]
    heads = ["WALLET", "BALANCE", "RESERVED", "ALLOCATED", "SPENT", "BURN/DAY", "STATUS", "PERIOD"]
    return table(heads, rows, {1, 2, 3, 4, 5})


def print_wallets(doc: Doc) -> None:
    wallets = doc.get("wallets") or []
    if not wallets:
        print("no wallets yet (credit the org pool, then allocate to teams)")
        return
    print(wallet_table(wallets))


def print_balance(doc: Doc) -> None:
    shown = [doc["wallet"], *([doc["org"]] if doc.get("org") else [])]
    print(wallet_table(shown))
    steps = doc.get("cascade") or []
    if steps:
        print()
        rows = [
            [
                str(s["consumer_group"]),
                " > ".join(s["cascade"]),
                str(s["on_insufficient"]),
                str(s.get("effective_wallet") or "-"),
                f"{s['effective_available']} {doc.get('currency', '')}".rstrip(),
            ]
            for s in steps
        ]
        heads = ["CONSUMER GROUP", "CASCADE", "ON INSUFFICIENT", "FUNDED BY NOW", "AVAILABLE"]
        print(table(heads, rows, {4}))


def _entry_detail(e: Doc) -> str:
    f = e.get("attributes") or {}
    parts: list[str] = []
    if "from" in f and "to" in f:
        parts.append(f"{f['from']} -> {f['to']}")
    if f.get("reservation"):
        parts.append(f"reservation {f['reservation']}")
    if f.get("estimated") == "1":
        parts.append("estimated")
    if f.get("overdraft") == "1":
        parts.append("overdraft")
    if e.get("description"):
        parts.append(str(e["description"]))
    return "; ".join(parts)


def print_ledger(doc: Doc, wallet: str | None) -> None:
    entries = doc.get("entries") or []
    if not entries:
        print("the ledger is empty" if wallet is None else f"no ledger entries for {wallet}")
        return
    cur = str(doc.get("currency", ""))
    rows = [
        [
            str(e["id"]),
            str(e["time"] or "").replace("T", " ").removesuffix("Z")[:19],
            str(e["op"]),
            str(e["wallet"]),
            f"{e['amount']} {cur}".rstrip(),
            str(e.get("actor") or ""),
            _entry_detail(e),
        ]
        for e in entries
    ]
    print(table(["ID", "TIME (UTC)", "OP", "WALLET", "AMOUNT", "ACTOR", "DETAIL"], rows, {4}))
    if doc.get("next_page_token"):
        print(f"(more: --before {doc['next_page_token']})")


def print_tickets(doc: Doc) -> None:
    tickets = doc.get("tickets") or []
    if not tickets:
        print("no cost tickets")
        return
    rows = [
        [
            str(t["id"]),
            str(t["status"]),
            str(t["team_id"]),
            str(t["consumer_group"]),
            str(t["model"]),
            _money(t, "amount"),
            str(t.get("funding") or ""),
            str(t["created"] or "").replace("T", " ").removesuffix("Z")[:19],
        ]
        for t in tickets
    ]
    heads = ["TICKET", "STATUS", "TEAM", "GROUP", "MODEL", "AMOUNT", "FUNDING", "CREATED (UTC)"]
    print(table(heads, rows, {5}))


def print_move(doc: Doc, summary: str) -> None:
    print(summary + (" (idempotent replay: nothing moved this time)" if doc["replayed"] else ""))
    for wallet_id, balance in doc["balances"].items():
        print(f"  {wallet_id}: balance {balance} {doc['currency']}")
    print(f"  ledger entry {doc['entry_id']}")


def write_atomic(path: str, data: bytes) -> None:
    """Atomic write: a half-written report never replaces a good one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a report is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "print_balance",
    "print_json",
    "print_ledger",
    "print_move",
    "print_tickets",
    "print_wallets",
    "table",
    "wallet_table",
    "write_atomic",
]
