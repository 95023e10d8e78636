"""Admission against the real Redis when the store is slow: a Check that gives up on its reserve
must not leave funds held (or later charged) for a request that was refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.admission import Admission
from keeptrusts_authz.gateway.api_keys import KeyRing
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import ReserveRequest
from keeptrusts_authz.wallets.service import WalletService

USD = 1_000_000
HEADERS = {"authorization": "Bearer kt_eng"}
BODY = json.dumps(
    {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def config(redis_url: str, **enforcement: Any) -> Any:
    return parse_config(
        {
            "organization": {"id": "acme"},
            "consumer_groups": [{"name": "eng", "api_key": "kt_eng", "wallet_team_id": "team_eng"}],
            "providers": [{"name": "openai", "url": "http://127.0.0.1:1", "models": ["*"]}],
            "redis": {"url": redis_url, "socket_timeout_seconds": 5},
            "gateway": {"check_timeout_seconds": 0.4},
            "enforcement": enforcement,
        }
    )


class LateAnswer:
    """The reserve runs in Redis at once, but its answer comes back too late."""

    def __init__(self, inner: WalletService, before: float = 0.0, after: float = 0.0) -> None:
        self.inner, self.before, self.after = inner, before, after

    async def reserve(self, req: ReserveRequest) -> Any:
        async def in_flight() -> Any:
            await asyncio.sleep(self.before)  # still on its way to Redis
            return await self.inner.reserve(req)

        result = await asyncio.shield(asyncio.ensure_future(in_flight()))
        await asyncio.sleep(self.after)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def scenario(redis_url: str, before: float, after: float, mode: str = "deny") -> Any:
    cfg = config(redis_url, on_store_error=mode)
    store = RedisWalletStore(connect(cfg.redis), "acme")
    wallets = WalletService(store, cfg)
    try:
        await wallets.credit(USD, "USD", "c", "test")
        await wallets.allocate("team:team_eng", USD, "USD", "a", "test")
        admission = Admission(
            cfg,
            KeyRing.from_config(cfg),
            PriceTable.from_config(cfg),
            LateAnswer(wallets, before, after),  # type: ignore[arg-type]
        )
        decision = await admission.decide("/v1/chat/completions", HEADERS, BODY)
        await asyncio.sleep(before + 0.3)  # let a late reserve land, if it is going to
        await admission.drain()
        return decision, await wallets.wallet("team:team_eng"), await wallets.audit()
    finally:
        await store.close()


def test_answer_lost_after_the_reserve_ran_is_released(redis_url: str) -> None:
    decision, wallet, audit = asyncio.run(scenario(redis_url, before=0.0, after=1.0))
    assert decision.status == 503
    assert decision.body["error"]["type"] == "store_unavailable"  # type: ignore[index]
    assert (wallet.balance, wallet.reserved, wallet.spent_total) == (USD, 0, 0)
    assert audit.ok, audit.mismatches


def test_reserve_landing_after_its_release_is_refused(redis_url: str) -> None:
    decision, wallet, audit = asyncio.run(scenario(redis_url, before=0.8, after=0.0))
    assert decision.status == 503
    assert (wallet.balance, wallet.reserved) == (USD, 0)
    assert audit.ok, audit.mismatches


def test_allow_mode_keeps_the_reservation_for_the_access_log(redis_url: str) -> None:
    decision, wallet, _ = asyncio.run(scenario(redis_url, before=0.0, after=1.0, mode="allow"))
    assert decision.allowed
    assert decision.metadata["reservation_id"].startswith("r_")
    assert wallet.reserved > 0  # settled (or expired) like any other reservation


@pytest.mark.parametrize("late", [True, False])
def test_release_tombstone_makes_a_later_reserve_refuse(redis_url: str, late: bool) -> None:
    async def go() -> tuple[str, int, int]:
        cfg = config(redis_url)
        store = RedisWalletStore(connect(cfg.redis), "acme")
        wallets = WalletService(store, cfg)
        try:
            await wallets.credit(USD, "USD", "c", "test")
            await wallets.allocate("team:team_eng", USD, "USD", "a", "test")
            rid = "r_" + "b" * 24
            req = ReserveRequest(
                rid,
                ("team:team_eng",),
                1000,
                "block",
                "team:team_eng",
                60_000,
                "team_eng",
                "eng",
                "",
                "gpt-4o",
            )
            if late:
                released = await wallets.release(rid, "check_abandoned")
                assert released.outcome == "unknown"
            before = await store.ledger_length()
            result = await wallets.reserve(req)
            return (
                result.outcome,
                (await wallets.wallet("team:team_eng")).balance,
                (await store.ledger_length() - before),
            )
        finally:
            await store.close()

    outcome, balance, new_entries = asyncio.run(go())
    if late:
        assert (outcome, balance, new_entries) == ("blocked", USD, 0)
    else:
        assert (outcome, balance, new_entries) == ("reserved", USD - 1000, 1)
