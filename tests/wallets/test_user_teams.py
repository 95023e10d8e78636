"""Users belong to teams, on both backends (real Redis with the Lua scripts, the memory twin)."""

from __future__ import annotations

import pytest

from keeptrusts_authz.errors import InsufficientFunds, InvalidInput, UserNotInTeam
from tests.wallets.support import USD, Backend, reserve_req, run


def test_first_allocation_names_the_team_and_a_second_team_is_refused(backend: Backend) -> None:
    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            with pytest.raises(InvalidInput) as info:  # three teams configured: ambiguous
                await svc.allocate("user:alice", USD, "USD", "", "t")
            assert info.value.details["reason"] == "team_required"
            await svc.allocate("user:alice", 5 * USD, "USD", "", "t", team="team_eng")
            # Known now: the seed's {"user_id": ...} form works for her.
            await svc.allocate("user:alice", USD, "USD", "", "t")
            before = backend.state()
            with pytest.raises(UserNotInTeam):
                await svc.allocate("user:alice", USD, "USD", "", "t", team="team_support")
            assert backend.state() == before
            assert (await svc.user_teams())["alice"] == "team_eng"
            # The ledger keeps the membership too (a replay rebuilds it).
            first = [
                e for e in await svc.ledger(10) if e.op == "allocate" and e.wallet == "user:alice"
            ]
            assert {e.fields.get("user_team") for e in first} == {"team_eng"}
            with pytest.raises(InvalidInput):
                await svc.allocate("user:bob", USD, "USD", "", "t", team="team_nope")

    run(body())


def test_reserve_refuses_a_user_of_another_team_and_changes_nothing(backend: Backend) -> None:
    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("team:team_support", 10 * USD, "USD", "", "t")
            await svc.allocate("user:alice", 5 * USD, "USD", "", "t", team="team_eng")
            before = backend.state()
            cands = ("user:alice", "team:team_support")
            res = await svc.reserve(reserve_req(USD, cands, "warn", team="team_support",
                                                overdraft="team:team_support"))  # fmt: skip
            assert (res.outcome, res.wallet, res.owner_team) == (
                "foreign_user",
                "user:alice",
                "team_eng",
            )
            assert backend.state() == before
            ok = await svc.reserve(reserve_req(USD, ("user:alice", "team:team_eng")))
            assert (ok.outcome, ok.wallet) == ("reserved", "user:alice")

    run(body())


def test_team_lead_moves_stay_inside_the_team(backend: Backend) -> None:
    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("team:team_eng", 20 * USD, "USD", "", "t")
            await svc.allocate("user:bob", 5 * USD, "USD", "", "t", team="team_support")
            res = await svc.team_allocate("team_eng", "alice", 8 * USD, "USD", "", "lead")
            assert res.balances == {"team:team_eng": 12 * USD, "user:alice": 8 * USD}
            res = await svc.team_reclaim("team_eng", "alice", 3 * USD, "USD", "", "lead")
            assert res.balances == {"user:alice": 5 * USD, "team:team_eng": 15 * USD}
            before = backend.state()
            with pytest.raises(UserNotInTeam):
                await svc.team_allocate("team_eng", "bob", USD, "USD", "", "lead")
            with pytest.raises(UserNotInTeam):
                await svc.team_reclaim("team_eng", "bob", USD, "USD", "", "lead")
            with pytest.raises(InsufficientFunds):
                await svc.team_allocate("team_eng", "alice", 16 * USD, "USD", "", "lead")
            with pytest.raises(InsufficientFunds):
                await svc.team_reclaim("team_eng", "alice", 6 * USD, "USD", "", "lead")
            assert backend.state() == before
            assert (await svc.audit()).ok

    run(body())
