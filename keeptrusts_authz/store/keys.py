"""Redis key schema (docs/ARCHITECTURE.md): every key of org `<org>` starts with `kt:{<org>}:`.

The `{org}` hash tag puts all of an organization's keys in one cluster slot, so one Lua script can
touch the org, team and user wallets, the reservation and the ledger atomically.
"""

from __future__ import annotations

import re
import time

_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Keys:
    """Builds the key names of one organization."""

    def __init__(self, org: str) -> None:
        if not _ORG.match(org):
            raise ValueError("organization id must match [A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
        self.org = org
        self.prefix = f"kt:{{{org}}}:"
        self.ledger = self.prefix + "ledger"
        self.wallets = self.prefix + "wallets"
        self.deadlines = self.prefix + "r:deadlines"
        self.wallet_prefix = self.prefix + "w:"
        self.reservation_prefix = self.prefix + "r:"
        self.idem_prefix = self.prefix + "idem:"
        # Store-loss marker: epoch id, created_ms, origin (credit|init|restore), hwm_floor. Its
        # absence, or a different id than the service saw, means the store was lost/replaced.
        self.epoch = self.prefix + "epoch"
        # Usage counters (spend/requests/tokens by team, group, model label) and the daily burn
        # per wallet, written by settle.lua and expire.lua in the same script as the ledger entry.
        self.usage = self.prefix + "usage"
        self.burn_prefix = self.prefix + "burn:"
        # A pub/sub CHANNEL, not a key (channels have their own namespace; the observability
        # `events` stream of the same name does not clash): `funds:<wallet>` / `ticket:<id>`.
        self.events_channel = self.prefix + "events"

    def wallet(self, wallet_id: str) -> str:
        return self.wallet_prefix + wallet_id

    def reservation(self, reservation_id: str) -> str:
        return self.reservation_prefix + reservation_id

    def period_state(self, wallet_id: str) -> str:
        """The budget period last applied to a wallet (period_rollover.lua)."""
        return self.prefix + "pw:" + wallet_id

    def idem(self, key: str) -> str:
        return self.idem_prefix + key

    def burn(self, day: str) -> str:
        """Spend per wallet of one UTC day (`yyyy-mm-dd`)."""
        return self.burn_prefix + day

    def stats(self, month: str | None = None) -> str:
        """Denial counters of one month (`yyyy-mm`, UTC; default: now)."""
        return self.prefix + "stats:" + (month or time.strftime("%Y-%m", time.gmtime()))


__all__ = ["Keys"]
