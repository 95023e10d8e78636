"""Read models of the wallet API: team membership seen in the ledger, money formatting.

Which users spent for which team over the last 7 days (reserve/settle entries carry both), read
from the ledger stream newest-first and bounded by `max_entries`: how a `team:<id>` token is
allowed to read that team's user wallets. Burn rate and depletion are wallets/burn.py's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from keeptrusts_authz.money import format_micros
from keeptrusts_authz.wallets.service import WalletService

WINDOW_DAYS = 7
_DAY_MS = 86_400_000
_PAGE = 1000


@dataclass
class LedgerWindow:
    user_teams: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


async def scan_window(
    wallets: WalletService,
    *,
    now_ms: int | None = None,
    days: int = WINDOW_DAYS,
    max_entries: int = 100_000,
) -> LedgerWindow:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now_ms - days * _DAY_MS
    window = LedgerWindow()
    before: str | None = None
    seen = 0
    while seen < max_entries:
        entries = await wallets.ledger(_PAGE, before=before)
        if not entries:
            break
        for entry in entries:
            if entry.ts_ms < cutoff:
                return window
            user, team = entry.fields.get("user", ""), entry.fields.get("team", "")
            if user and team:
                window.user_teams[user].add(team)
        seen += len(entries)
        before = entries[-1].id
        if len(entries) < _PAGE:
            break
    return window


def money(micros: int) -> str:
    return format_micros(micros)


__all__ = ["LedgerWindow", "money", "scan_window"]
