"""The wallet API's view of a budget wallet: period, its funds, projected spend, at_risk."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from keeptrusts_authz.api.auth import AdminAuth
from keeptrusts_authz.api.servicer import WalletApiServicer
from keeptrusts_authz.periods.budgets import BudgetRule, BudgetStatus
from keeptrusts_authz.periods.calendar import BudgetCalendar
from keeptrusts_authz.periods.models import PeriodState
from keeptrusts_authz.wallets.burn import BurnWindow
from keeptrusts_authz.wallets.models import Wallet
from tests.wallets.support import USD, make_config

NY = BudgetCalendar.of("America/New_York")
WALLET = "team:team_eng"


def _status(spent: int, projected: int) -> BudgetStatus:
    dec = NY.parse("2026-12")
    rule = BudgetRule(WALLET, "team_eng", None, "monthly", "reset", 1200 * USD, 0)
    state = PeriodState(WALLET, "2026-12", "1-0", "reset", 1200 * USD, 0, 0, 0, 0, 0)
    return BudgetStatus(rule, dec, state, 1200 * USD - spent, spent, projected, dec.end)


def _view(status: BudgetStatus | None) -> Any:
    cfg = make_config("redis://127.0.0.1:1/0")
    api = WalletApiServicer(cast(Any, None), cfg, AdminAuth(cfg.admin.tokens), None)
    wallet = Wallet.build(
        WALLET,
        balance=900 * USD,
        reserved=0,
        allocated_total=1200 * USD,
        spent_total=300 * USD,
        low_balance_ratio=Decimal("0.2"),
    )
    now = datetime(2026, 12, 6, tzinfo=NY.tz).timestamp()
    window = BurnWindow({}, now - 7 * 86400, now)
    return api._wallet_doc(wallet, window, {WALLET: status} if status else None)


def test_budget_wallet_shows_its_period_and_turns_at_risk() -> None:
    ok = _view(_status(300 * USD, 1100 * USD))
    assert (ok["status"], ok["period"], ok["period_allocation"], ok["projected_period_spend"]) == (
        "healthy",
        "2026-12",
        "1200.00",
        "1100.00",
    )
    risky = _view(_status(300 * USD, 1860 * USD))
    assert risky["status"] == "at_risk" and risky["projected_period_spend"] == "1860.00"
    plain = _view(None)
    assert (plain["status"], plain["period"], plain["period_allocation"]) == ("healthy", None, None)
