from datetime import date

from keeptrusts_authz.api.views import depletion_date
from keeptrusts_authz.wallets.models import Wallet

TODAY = date(2026, 11, 29)


def wallet(balance: int) -> Wallet:
    return Wallet.build(
        "team:t",
        balance=balance,
        reserved=0,
        allocated_total=10**12,
        spent_total=0,
        low_balance_ratio=0,
        org_id="acme",
    )


def test_projection_in_days() -> None:
    assert depletion_date(wallet(10_000_000), 1_000_000, TODAY) == "2026-12-09"


def test_a_trickle_against_a_large_balance_is_never_not_an_overflow() -> None:
    assert depletion_date(wallet(1_200_000_000), 1, TODAY) == ""
    assert depletion_date(wallet(10**15), 1, TODAY) == ""


def test_no_burn_and_depleted() -> None:
    assert depletion_date(wallet(5), 0, TODAY) == ""
    assert depletion_date(wallet(0), 0, TODAY) == "2026-11-29"
