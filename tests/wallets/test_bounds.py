"""L1 (issue 9): wallet balances and totals stay below 2^53 micros, where a Lua double is still
exact. A move that would pass the bound is refused before anything is written, on real Redis and
on the in-memory twin alike; balance_after is exact up to the bound."""

from __future__ import annotations

import pytest

from keeptrusts_authz.errors import BalanceLimit
from keeptrusts_authz.wallets.models import MAX_AMOUNT_MICROS, MAX_WALLET_MICROS
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import Backend, run

BIG = MAX_AMOUNT_MICROS  # the largest single move (10^15 micros)


def _service(backend: Backend) -> WalletService:
    cfg = backend.config()
    return WalletService(backend.new_store(cfg), cfg)


async def _fill_org(svc: WalletService, amount: int) -> None:
    while amount > 0:
        step = min(amount, BIG)
        await svc.credit(step, "USD", "fill", "test")
        amount -= step


def test_credit_up_to_the_bound_is_exact_and_past_it_refused(backend: Backend) -> None:
    async def go() -> None:
        svc = _service(backend)
        await _fill_org(svc, MAX_WALLET_MICROS - 1)
        result = await svc.credit(1, "USD", "to the bound", "test")
        assert result.balances["org"] == MAX_WALLET_MICROS
        entries = await svc.ledger(count=1)
        assert int(entries[0].fields["balance_after"]) == MAX_WALLET_MICROS  # no double rounding
        length = len(await svc.ledger(count=100))
        with pytest.raises(BalanceLimit) as err:
            await svc.credit(1, "USD", "past the bound", "test")
        assert err.value.http_status == 400 and err.value.code == "balance_limit"
        assert err.value.details["wallet"] == "org"
        assert err.value.details["field"] in ("balance", "allocated_total", "funded_total")
        assert "2^53 - 1 micros" in err.value.message
        assert (await svc.wallet("org")).balance == MAX_WALLET_MICROS
        assert len(await svc.ledger(count=100)) == length
        assert (await svc.audit()).ok

    run(go())


def test_transfer_never_debits_the_source_for_a_destination_at_the_bound(
    backend: Backend,
) -> None:
    """Transfers back and forth raise each side's funded_total (money ever put in) by every
    amount: the destination reaches the bound while the org never does."""

    async def go() -> None:
        svc = _service(backend)
        a, b = "team:team_eng", "team:team_support"
        await svc.credit(BIG, "USD", "fund", "test")
        await svc.credit(1, "USD", "fund", "test")
        await svc.allocate(a, BIG, "USD", "fund", "test")
        await svc.allocate(b, 1, "USD", "fund", "test")
        source, dest = a, b
        for _ in range(20):  # the bound (9.007e15) is reached at the ninth transfer or so
            before = {w: await svc.wallet(w) for w in (a, b, "org")}
            ledger = len(await svc.ledger(count=1000))
            try:
                await svc.transfer(source, dest, BIG, "USD", "ping", "test")
            except BalanceLimit as err:
                assert err.details["wallet"] == dest
                assert err.details["field"] == "funded_total"
                break
            source, dest = dest, source
        else:
            pytest.fail("20 transfers of 10^15 micros each and funded_total was never bounded")
        # Refused before any write: the source was not debited, nothing was logged.
        assert {w: await svc.wallet(w) for w in (a, b, "org")} == before
        assert len(await svc.ledger(count=1000)) == ledger
        assert before[source].balance >= BIG  # it could pay: only the bound refused it
        assert (await svc.audit()).ok

    run(go())
