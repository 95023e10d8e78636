"""Read models of the wallet API: burn rate and depletion from the ledger, team membership.

Burn rate = money spent (settle and expire entries: the real or estimated cost) per day over the
last 7 days, read from the ledger stream newest-first and bounded by `max_entries`. The same scan
tells which users spent for which team (reserve/settle entries carry both), which is how a
`team:<id>` token is allowed to read that team's user wallets.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from keeptrusts_authz.money import format_micros
from keeptrusts_authz.wallets.models import Wallet
from keeptrusts_authz.wallets.service import WalletService

WINDOW_DAYS = 7
_DAY_MS = 86_400_000
_SPEND_OPS = ("settle", "expire")
_PAGE = 1000


@dataclass
class LedgerWindow:
    spent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    user_teams: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    days: int = WINDOW_DAYS

    def burn_per_day(self, wallet_id: str) -> int:
        """Micros per day (rounded down)."""
        return self.spent.get(wallet_id, 0) // self.days


async def scan_window(
    wallets: WalletService,
    *,
    now_ms: int | None = None,
    days: int = WINDOW_DAYS,
    max_entries: int = 100_000,
) -> LedgerWindow:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now_ms - days * _DAY_MS
    window = LedgerWindow(days=days)
    before: str | None = None
    seen = 0
    while seen < max_entries:
        entries = await wallets.ledger(_PAGE, before=before)
        if not entries:
            break
        for entry in entries:
            if entry.ts_ms < cutoff:
                return window
            if entry.op in _SPEND_OPS:
                window.spent[entry.wallet] += entry.amount
            user, team = entry.fields.get("user", ""), entry.fields.get("team", "")
            if user and team:
                window.user_teams[user].add(team)
        seen += len(entries)
        before = entries[-1].id
        if len(entries) < _PAGE:
            break
    return window


# Projections further out than this are "never" (and would overflow `date` long before 9999).
_HORIZON_DAYS = 100 * 365


def depletion_date(wallet: Wallet, burn_per_day: int, today: date | None = None) -> str:
    """YYYY-MM-DD when the available balance runs out at the current burn rate ('' = never)."""
    today = today or datetime.now(UTC).date()
    if wallet.balance <= 0:
        return today.isoformat() if wallet.allocated_total > 0 or burn_per_day > 0 else ""
    if burn_per_day <= 0:
        return ""
    days = wallet.balance // burn_per_day
    if days > _HORIZON_DAYS:  # a trickle of spend against a large balance: not in sight
        return ""
    return (today + timedelta(days=days)).isoformat()


def money(micros: int) -> str:
    return format_micros(micros)


__all__ = ["LedgerWindow", "depletion_date", "money", "scan_window"]
