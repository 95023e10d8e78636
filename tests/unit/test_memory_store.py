"""Lifetimes of the in-memory twin, driven by its clock (Redis does the same with PEXPIRE)."""

from __future__ import annotations

import asyncio

import pytest

from keeptrusts_authz.errors import StoreDataError
from keeptrusts_authz.wallets.memory_store import CLOSED_TTL_MS, IDEM_TTL_MS, MemoryWalletStore
from keeptrusts_authz.wallets.models import ReleaseRequest, ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.ports import StoreRefused


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


def req(rid: str, amount: int = 10, ttl_ms: int = 1000) -> ReserveRequest:
    return ReserveRequest(rid, ("team:t",), amount, "block", None, ttl_ms, "t", "g", "u", "m")


def test_idempotency_key_lives_one_day() -> None:
    clock = Clock()
    store = MemoryWalletStore("acme", clock=clock)

    async def go() -> None:
        kw = {"actor": "a", "description": "d", "idempotency_key": "k"}
        first = await store.credit(5, fingerprint="f1", **kw)
        with pytest.raises(StoreRefused) as info:
            await store.credit(5, fingerprint="f2", **kw)
        assert info.value.reason == "conflict"
        clock.ms += IDEM_TTL_MS
        second = await store.credit(5, fingerprint="f2", **kw)
        assert second.entry_id != first.entry_id and not second.replayed
        assert (await store.wallet("org")) == {
            "balance": 10,
            "reserved": 0,
            "allocated_total": 10,
            "spent_total": 0,
        }

    asyncio.run(go())


def test_tombstone_and_closed_reservations_live_seven_days() -> None:
    clock = Clock()
    store = MemoryWalletStore("acme", clock=clock)

    async def go() -> None:
        await store.credit(100, actor="a", description="", fingerprint="f")
        await store.allocate("team:t", 100, create=True, actor="a", description="", fingerprint="g")
        assert (await store.release(ReleaseRequest("r_late"))).outcome == "unknown"
        assert (await store.reserve(req("r_late"))).outcome == "blocked"
        assert (await store.reserve(req("r_1"))).outcome == "reserved"
        assert (await store.settle(SettleRequest("r_1", 4, False))).outcome == "settled"
        clock.ms += CLOSED_TTL_MS
        assert await store.reservation("r_1") is None
        assert (await store.reserve(req("r_late"))).outcome == "reserved"
        ids = [e.op for e in await store.ledger(10)]
        assert ids == ["reserve", "settle", "reserve", "allocate", "credit"]

    asyncio.run(go())


def test_expire_takes_the_earliest_deadlines_first_up_to_the_limit() -> None:
    clock = Clock()
    store = MemoryWalletStore("acme", clock=clock)

    async def go() -> None:
        await store.credit(100, actor="a", description="", fingerprint="f")
        await store.allocate("team:t", 100, create=True, actor="a", description="", fingerprint="g")
        for i, ttl in enumerate((300, 100, 200)):
            await store.reserve(req(f"r_{i}", 10, ttl))
        clock.ms += 300
        first = await store.expire(2)
        assert [e.reservation_id for e in first] == ["r_1", "r_2"]
        assert [e.reservation_id for e in await store.expire(5)] == ["r_0"]
        w = await store.wallet("team:t")
        assert w is not None and (w["balance"], w["reserved"], w["spent_total"]) == (70, 0, 30)
        with pytest.raises(StoreDataError):
            await store.expire(0)

    asyncio.run(go())
