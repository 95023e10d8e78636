"""Property-based: random sequences of credit/allocate/reclaim/transfer/reserve/settle/release/
expire against the real Redis, checked after every step against a Python model, the ledger audit
and the no-negative-balance rule (only warn/showback overdraft may go below zero)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from keeptrusts_authz.errors import InsufficientFunds, InvalidInput, UnknownWallet
from keeptrusts_authz.wallets.models import Policy, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import USD, Backend, reserve_req

T = TypeVar("T")
MEMBERS = ["team:team_eng", "team:team_support", "user:alice", "team:ghost"]


def _team_of(wallet: str) -> str | None:
    """alice is a user of team_eng (users belong to teams; the reserves below are team_eng's)."""
    return "team_eng" if wallet.startswith("user:") else None


CANDIDATES = [
    ("user:alice", "team:team_eng"),
    ("team:team_eng",),
    ("team:team_support",),
    ("user:alice", "team:team_support", "org"),
    ("org",),
]
amounts = st.integers(min_value=1, max_value=40 * USD)


class WalletMachine(RuleBasedStateMachine):
    backend: ClassVar[Backend]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        cfg = self.backend.config()
        self.store = self.backend.new_store(cfg)
        self.svc = WalletService(self.store, cfg)
        self.balance: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.open: dict[str, tuple[str, int, bool]] = {}  # rid -> wallet, amount, expires soon
        self.overdrafted: set[str] = set()
        self.counter = 0  # deterministic reservation ids keep hypothesis replays reproducible

    def teardown(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def _create(self, wallet: str) -> None:
        self.balance.setdefault(wallet, 0)
        self.reserved.setdefault(wallet, 0)

    def _refused_untouched(self, coro: Coroutine[Any, Any, Any], *errors: type[Exception]) -> None:
        before = self.backend.state()
        with pytest.raises(errors):
            self.run(coro)
        assert self.backend.state() == before

    @rule(amount=amounts)
    def credit(self, amount: int) -> None:
        self.run(self.svc.credit(amount, "USD", "credit", "prop"))
        self._create("org")
        self.balance["org"] += amount

    @rule(wallet=st.sampled_from(MEMBERS), amount=amounts)
    def allocate(self, wallet: str, amount: int) -> None:
        creatable = wallet != "team:ghost"
        if (wallet not in self.balance and not creatable) or self.balance.get("org", 0) < amount:
            self._refused_untouched(
                self.svc.allocate(wallet, amount, "USD", "", "prop", team=_team_of(wallet)),
                InsufficientFunds,
                UnknownWallet,
            )
            return
        self.run(self.svc.allocate(wallet, amount, "USD", "", "prop", team=_team_of(wallet)))
        self._create(wallet)
        self.balance["org"] -= amount
        self.balance[wallet] += amount

    @rule(wallet=st.sampled_from(MEMBERS), amount=amounts)
    def reclaim(self, wallet: str, amount: int) -> None:
        if self.balance.get(wallet, -1) < amount:
            self._refused_untouched(
                self.svc.reclaim(wallet, amount, "USD", "", "prop"),
                InsufficientFunds,
                UnknownWallet,
            )
            return
        self.run(self.svc.reclaim(wallet, amount, "USD", "", "prop"))
        self._create("org")
        self.balance[wallet] -= amount
        self.balance["org"] += amount

    @rule(src=st.sampled_from(MEMBERS), dst=st.sampled_from(MEMBERS), amount=amounts)
    def transfer(self, src: str, dst: str, amount: int) -> None:
        call = self.svc.transfer(src, dst, amount, "USD", "", "prop", team=_team_of(dst))
        if src == dst:
            self._refused_untouched(call, InvalidInput)
            return
        dst_ok = dst in self.balance or dst != "team:ghost"
        if src not in self.balance or not dst_ok or self.balance[src] < amount:
            self._refused_untouched(call, InsufficientFunds, UnknownWallet)
            return
        self.run(call)
        self._create(dst)
        self.balance[src] -= amount
        self.balance[dst] += amount

    @rule(
        amount=st.integers(min_value=0, max_value=30 * USD),
        candidates=st.sampled_from(CANDIDATES),
        policy=st.sampled_from(["block", "hold", "warn", "showback"]),
        soon=st.booleans(),
    )
    def reserve(self, amount: int, candidates: tuple[str, ...], policy: Policy, soon: bool) -> None:
        self.counter += 1
        req = reserve_req(
            amount,
            candidates,
            policy,
            reservation_id=f"r_{self.counter:024x}",
            ttl_ms=1 if soon else 600_000,
        )
        res = self.run(self.svc.reserve(req))
        expected = next(
            (w for w in candidates if w in self.balance and self.balance[w] >= amount), None
        )
        assert res.seen == {
            w: self.balance[w]
            for w in candidates[: candidates.index(expected) + 1 if expected else None]
            if w in self.balance
        }
        if expected is not None:
            assert (res.outcome, res.wallet) == ("reserved", expected)
        elif (policy == "warn" and candidates[-1] in self.balance) or (
            # showback may open its wallet only in an armed store (the first credit arms it)
            policy == "showback" and "org" in self.balance
        ):
            assert (res.outcome, res.wallet) == ("overdraft", candidates[-1])
            self.overdrafted.add(candidates[-1])
        else:
            # warn needs an existing wallet to overdraw: refused like block
            assert res.outcome == ("hold" if policy == "hold" else "blocked")
            return
        assert res.wallet is not None
        self._create(res.wallet)
        self.balance[res.wallet] -= amount
        self.reserved[res.wallet] += amount
        self.open[req.reservation_id] = (res.wallet, amount, soon)
        # a retried Check with the same id changes nothing
        assert self.run(self.svc.reserve(req)).outcome == "duplicate"

    def _close(self, reservation_id: str, cost: int) -> None:
        wallet, amount, _ = self.open.pop(reservation_id)
        self.reserved[wallet] -= amount
        self.balance[wallet] += amount - cost

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), twice=st.booleans())
    def settle(self, data: st.DataObject, twice: bool) -> None:
        reservation_id = data.draw(st.sampled_from(sorted(self.open)))
        wallet, amount, _ = self.open[reservation_id]
        cost = data.draw(st.integers(min_value=0, max_value=amount))
        res = self.run(self.svc.settle(SettleRequest(reservation_id, cost, False)))
        assert (res.outcome, res.wallet, res.reserved, res.cost) == (
            "settled",
            wallet,
            amount,
            cost,
        )
        self._close(reservation_id, cost)
        if twice:
            before = self.backend.state()
            again = self.run(self.svc.settle(SettleRequest(reservation_id, cost + 1, False)))
            assert again.outcome == "already_closed" and self.backend.state() == before

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        reservation_id = data.draw(st.sampled_from(sorted(self.open)))
        res = self.run(self.svc.release(reservation_id, "provider error"))
        assert res.outcome == "released"
        self._close(reservation_id, 0)

    @rule()
    def expire(self) -> None:
        due = {r for r, (_, _, soon) in self.open.items() if soon}
        if due:
            time.sleep(0.002)
        expired = self.run(self.svc.expire_due(1000))
        assert {x.reservation_id for x in expired} == due
        for x in expired:
            self._close(x.reservation_id, x.amount)

    @rule()
    def settle_unknown(self) -> None:
        before = self.backend.state()
        assert self.run(self.svc.settle(SettleRequest("r_unknown", 1, False))).outcome == "unknown"
        assert self.backend.state() == before

    @invariant()
    def books_balance(self) -> None:
        report = self.run(self.svc.audit())
        assert report.ok, report.mismatches
        assert report.open_reservations == len(self.open)
        wallets = {w.id: w for w in self.run(self.svc.wallets())}
        assert set(wallets) == set(self.balance)
        for wid, w in wallets.items():
            assert (w.balance, w.reserved) == (self.balance[wid], self.reserved[wid]), wid
            assert w.reserved >= 0
            if wid not in self.overdrafted:
                assert w.balance >= 0, wid


def test_wallet_state_machine(backend: Backend) -> None:
    WalletMachine.backend = backend
    run_state_machine_as_test(
        WalletMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
