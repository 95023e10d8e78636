"""Burn rate and depletion: the one rule both the wallet API and the Prometheus gauges use.

Spend per wallet is kept by the spend scripts (settle.lua, expire.lua) in one hash per UTC day
(`kt:{org}:burn:<yyyy-mm-dd>`, the day of the ledger entry's Redis time), so the window is
read in one round trip whatever the traffic, and always equals the ledger's settle + expire sums.
The window is today (partial) and the 7 previous full UTC days; the rate is what was spent in it
divided by the time it covers (from midnight UTC 7 days ago until now), so a burst today is not
diluted by days the window does not contain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

BURN_DAYS = 8  # today (partial) + the 7 previous UTC days (the scripts keep them ~8 days)
_DAY_SECONDS = 86_400
# Projections further out than this are "never" (and would overflow `date` long before 9999).
_HORIZON_DAYS = 100 * 365


def burn_days(now: float) -> list[str]:
    """The UTC days of the burn window, oldest first (7 full days + today)."""
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(BURN_DAYS - 1, -1, -1)]


def burn_window_start(now: float) -> float:
    """Unix time of the start of the oldest burn bucket (midnight UTC, 7 days before today)."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today - timedelta(days=BURN_DAYS - 1)).timestamp()


@dataclass(frozen=True)
class BurnWindow:
    """Micros spent per wallet between `since` and `until` (unix seconds)."""

    spent: Mapping[str, int]
    since: float
    until: float

    @classmethod
    def from_days(cls, by_day: Mapping[str, Mapping[str, int]], now: float) -> BurnWindow:
        """Fold the day buckets of `burn_days(now)` into one window ending at `now`."""
        spent: dict[str, int] = {}
        for day in burn_days(now):
            for wallet, micros in by_day.get(day, {}).items():
                spent[wallet] = spent.get(wallet, 0) + micros
        return cls(spent, burn_window_start(now), now)

    @property
    def seconds(self) -> float:
        return max(1.0, self.until - self.since)

    def micros(self, wallet_id: str) -> int:
        return self.spent.get(wallet_id, 0)

    def per_second(self, wallet_id: str) -> float:
        """Micros per second (the Prometheus gauge's base, converted to units there)."""
        return self.micros(wallet_id) / self.seconds

    def per_day(self, wallet_id: str) -> int:
        """Micros per day, rounded down (integer money for the API)."""
        return self.micros(wallet_id) * _DAY_SECONDS // math.ceil(self.seconds)

    def depletion_seconds(self, wallet_id: str, balance: int) -> float | None:
        """Seconds until `balance` reaches zero at this rate; 0 when already there, None never."""
        if balance <= 0:
            return 0.0
        rate = self.per_second(wallet_id)
        if rate <= 0:
            return None
        seconds = balance / rate
        return seconds if math.isfinite(seconds) else None


def depletion_date(
    balance: int, allocated_total: int, burn_per_day: int, today: date | None = None
) -> str:
    """YYYY-MM-DD when the available balance runs out at `burn_per_day` ('' = never)."""
    today = today or datetime.now(UTC).date()
    if balance <= 0:
        return today.isoformat() if allocated_total > 0 or burn_per_day > 0 else ""
    if burn_per_day <= 0:
        return ""
    days = balance // burn_per_day
    if days > _HORIZON_DAYS:  # a trickle of spend against a large balance: not in sight
        return ""
    return (today + timedelta(days=days)).isoformat()


__all__ = ["BURN_DAYS", "BurnWindow", "burn_days", "burn_window_start", "depletion_date"]
