"""Read models of the wallet API: money formatting.

Team membership is not read here: it comes from the wallet records and the configuration
(`WalletService.user_teams`), never from the ledger, whose user/team fields a key holder writes
through request headers. Burn rate and depletion are wallets/burn.py's.
"""

from __future__ import annotations

from keeptrusts_authz.money import format_micros


def money(micros: int) -> str:
    return format_micros(micros)


__all__ = ["money"]
