"""Users belong to teams, on both backends (real Redis with the Lua scripts, the memory twin)."""

from __future__ import annotations

import pytest

from keeptrusts_authz.errors import InsufficientFunds, InvalidInput, UserNotInTeam
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import ORG, USD, Backend, reserve_req, run, sync_client


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
            # Billing places alice in team_eng; from then on its lead may fund her.
            await svc.allocate("user:alice", 0 * USD + 1, "USD", "", "t", team="team_eng")
            await svc.reclaim("user:alice", 1, "USD", "", "t")
            res = await svc.team_move("allocate", "team_eng", "alice", 8 * USD, "USD", "", "lead")
            assert res.balances == {"team:team_eng": 12 * USD, "user:alice": 8 * USD}
            res = await svc.team_move("reclaim", "team_eng", "alice", 3 * USD, "USD", "", "lead")
            assert res.balances == {"user:alice": 5 * USD, "team:team_eng": 15 * USD}
            before = backend.state()
            with pytest.raises(UserNotInTeam):
                await svc.team_move("allocate", "team_eng", "bob", USD, "USD", "", "lead")
            with pytest.raises(UserNotInTeam):
                await svc.team_move("reclaim", "team_eng", "bob", USD, "USD", "", "lead")
            with pytest.raises(InsufficientFunds):
                await svc.team_move("allocate", "team_eng", "alice", 16 * USD, "USD", "", "lead")
            with pytest.raises(InsufficientFunds):
                await svc.team_move("reclaim", "team_eng", "alice", 6 * USD, "USD", "", "lead")
            assert backend.state() == before
            assert (await svc.audit()).ok

    run(body())


def _drop_team(backend: Backend, wallet_id: str) -> None:
    """The state of a wallet funded before users belonged to teams: no `team` field."""
    if backend.url is not None:
        client = sync_client(backend.url)
        try:
            assert client.hdel(f"kt:{{{ORG}}}:w:{wallet_id}", "team") == 1
        finally:
            client.close()
    else:
        assert backend._memory is not None
        del backend._memory._s.teams[wallet_id]


def test_team_lead_cannot_adopt_a_wallet_without_a_team(backend: Backend) -> None:
    """Review #1: a legacy user wallet (no `team`) of another team must not be adopted by a team
    lead's move and then reclaimed into the lead's team."""

    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("team:team_eng", 10 * USD, "USD", "", "t")
            await svc.allocate("user:bob", 20 * USD, "USD", "", "t", team="team_support")
            _drop_team(backend, "user:bob")
            before = backend.state()
            with pytest.raises(UserNotInTeam):
                await svc.team_move("allocate", "team_eng", "bob", 1, "USD", "", "eng-lead")
            with pytest.raises(UserNotInTeam):
                await svc.team_move("reclaim", "team_eng", "bob", 20 * USD, "USD", "", "eng-lead")
            assert backend.state() == before
            assert await svc.store.wallet_team("user:bob") == ""
            # Billing's allocate assigns the team; then the right lead may move it.
            await svc.allocate("user:bob", 1, "USD", "", "billing", team="team_support")
            assert await svc.store.wallet_team("user:bob") == "team_support"
            with pytest.raises(UserNotInTeam):
                await svc.team_move("reclaim", "team_eng", "bob", USD, "USD", "", "eng-lead")

    run(body())


def test_team_lead_cannot_claim_an_unplaced_user(backend: Backend) -> None:
    """Review #2: a team lead funds only users the config or billing placed in its team; a new
    id is not claimed for the lead's team (which would lock the real team out of it)."""

    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("team:team_eng", 10 * USD, "USD", "", "t")
            before = backend.state()
            with pytest.raises(UserNotInTeam) as info:
                await svc.team_move("allocate", "team_eng", "carol", USD, "USD", "", "eng-lead")
            assert info.value.details["wallet"] == "user:carol"
            assert backend.state() == before
            # carol is still free for billing to place in her real team.
            await svc.allocate("user:carol", USD, "USD", "", "billing", team="team_support")

        # A user the config's user budgets place in team_eng: its lead may create her wallet.
        cfg = backend.config()
        cfg = cfg.model_copy(update={"budgets": [_user_budget(cfg, "team_eng", "dora")]})
        svc2 = WalletService(backend.new_store(cfg), cfg)
        try:
            await svc2.credit(100 * USD, "USD", "seed", "t")
            await svc2.allocate("team:team_eng", 10 * USD, "USD", "", "t")
            res = await svc2.team_move("allocate", "team_eng", "dora", USD, "USD", "", "eng-lead")
            assert res.balances["user:dora"] == USD
            assert await svc2.store.wallet_team("user:dora") == "team_eng"
            with pytest.raises(UserNotInTeam):
                await svc2.team_move("allocate", "team_support", "dora", USD, "USD", "", "sup-lead")
        finally:
            close = getattr(svc2.store, "close", None)
            if close is not None:
                await close()

    run(body())


def _user_budget(cfg: object, team: str, user: str) -> object:
    from keeptrusts_authz.config.models import Budget

    return Budget(team_id=team, user_id=user, amount="5", period="monthly")


def test_reclaim_with_a_team_checks_the_user_in_the_same_script(backend: Backend) -> None:
    """Review #8: billing's reclaim of team_id+user_id checks the user's team inside the reclaim
    script (no Python pre-check that races with the move)."""

    async def body() -> None:
        async with backend.service() as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("user:bob", 5 * USD, "USD", "", "t", team="team_support")
            await svc.allocate("user:eve", 5 * USD, "USD", "", "t", team="team_eng")
            _drop_team(backend, "user:eve")
            before = backend.state()
            with pytest.raises(UserNotInTeam):
                await svc.reclaim("user:bob", USD, "USD", "", "billing", team="team_eng")
            with pytest.raises(UserNotInTeam):  # no team recorded: not in team_eng either
                await svc.reclaim("user:eve", USD, "USD", "", "billing", team="team_eng")
            with pytest.raises(InvalidInput):
                await svc.reclaim("team:team_eng", USD, "USD", "", "billing", team="team_eng")
            assert backend.state() == before
            res = await svc.reclaim("user:bob", USD, "USD", "", "billing", team="team_support")
            assert res.balances["user:bob"] == 4 * USD

    run(body())


def test_one_precedence_for_a_users_team_the_record_then_the_config(backend: Backend) -> None:
    """Review #3: user_team_for and user_teams answer the same (record, else config), also
    when a user budget names another team than the wallet record."""

    async def body() -> None:
        cfg = backend.config()
        budgets = [_user_budget(cfg, "team_eng", "bob"), _user_budget(cfg, "team_eng", "dora")]
        cfg = cfg.model_copy(update={"budgets": budgets})
        svc = WalletService(backend.new_store(cfg), cfg)
        try:
            await svc.credit(100 * USD, "USD", "seed", "t")
            # Billing placed bob in support before the config named him for eng.
            await svc.store.allocate(
                "user:bob", USD, create=True, actor="t", description="", fingerprint="f",
                team="team_support",
            )  # fmt: skip
            teams = await svc.user_teams()
            assert (teams["bob"], teams["dora"]) == ("team_support", "team_eng")
            assert await svc.user_team_for("user:bob", None) == "team_support"
            assert await svc.user_team_for("user:dora", None) == "team_eng"
            with pytest.raises(UserNotInTeam):
                await svc.user_team_for("user:bob", "team_eng")
            with pytest.raises(UserNotInTeam):
                await svc.user_team_for("user:dora", "team_support")
        finally:
            await svc.store.close()

    run(body())
