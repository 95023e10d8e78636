"""Redis answering "not now" (OOM, READONLY, ...) is an outage to retry, not a refusal to drop."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio.connection

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.gateway.settler import Settler
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService

USD = 1_000_000


def setup(redis_url: str) -> tuple[RedisWalletStore, WalletService]:
    cfg = parse_config(
        {
            "organization": {"id": "acme"},
            "consumer_groups": [{"name": "eng", "api_key": "kt_e", "wallet_team_id": "team_eng"}],
            "redis": {"url": redis_url},
        }
    )
    store = RedisWalletStore(connect(cfg.redis), "acme")
    return store, WalletService(store, cfg)


def request(i: int) -> ReserveRequest:
    return ReserveRequest(
        f"r_{i:024x}",
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


@pytest.fixture
def squeeze(redis_url: str):  # type: ignore[no-untyped-def]
    admin = redis.Redis.from_url(redis_url)
    yield lambda: admin.config_set("maxmemory", "1")
    admin.config_set("maxmemory", "0")
    admin.close()


def test_out_of_memory_is_store_unavailable_everywhere(redis_url: str, squeeze) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        store, wallets = setup(redis_url)
        try:
            await wallets.credit(USD, "USD", "c", "t")
            await wallets.allocate("team:team_eng", USD, "USD", "a", "t")
            await wallets.reserve(request(1))
            squeeze()
            with pytest.raises(StoreUnavailable):
                await wallets.reserve(request(2))
            with pytest.raises(StoreUnavailable):
                await wallets.settle_batch([SettleRequest(request(1).reservation_id, 10, False)])
        finally:
            await store.close()

    asyncio.run(go())


def test_settler_retries_until_memory_is_back(redis_url: str, squeeze) -> None:  # type: ignore[no-untyped-def]
    admin = redis.Redis.from_url(redis_url)

    async def go() -> str:
        store, wallets = setup(redis_url)
        try:
            await wallets.credit(USD, "USD", "c", "t")
            await wallets.allocate("team:team_eng", USD, "USD", "a", "t")
            rid = request(1).reservation_id
            await wallets.reserve(request(1))
            squeeze()
            settler = Settler(wallets, max_delay=0.01)
            settler.start()
            settler.submit(SettleRequest(rid, 400, False))
            await asyncio.sleep(0.5)
            assert (await wallets.reservation(rid)).state == "open"  # type: ignore[union-attr]
            admin.config_set("maxmemory", "0")
            assert await settler.flush(10)
            await settler.close()
            return (await wallets.reservation(rid)).state  # type: ignore[union-attr]
        finally:
            await store.close()

    assert asyncio.run(go()) == "settled"
    admin.close()


def test_cluster_failover_attribute_error_inside_evalsha_is_store_unavailable(
    redis_url: str,
) -> None:
    """redis-py's cluster client, failing over, writes to a node connection whose writer it has
    already dropped (AttributeError on None from its own code, inside evalsha): every store call
    must turn that into StoreUnavailable (503, fail closed), never a 500."""

    async def dropped_writer(*_: object, **__: object) -> object:
        conn = redis.asyncio.connection.Connection(host="127.0.0.1", port=1)
        await conn._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
        raise AssertionError("redis-py wrote to a dropped writer without failing")

    async def go() -> None:
        store, wallets = setup(redis_url)
        try:
            await wallets.credit(USD, "USD", "c", "t")
            await wallets.allocate("team:team_eng", USD, "USD", "a", "t")
            store._scripts["reserve"] = dropped_writer  # type: ignore[assignment]
            with pytest.raises(StoreUnavailable) as info:
                await wallets.reserve(request(3))
            assert isinstance(info.value.__cause__, AttributeError)
            assert "writelines" in str(info.value.__cause__)
            assert info.value.http_status == 503
            # Nothing moved: the wallet still has everything it was given.
            assert (await wallets.wallet("team:team_eng")).balance == USD
        finally:
            await store.close()

    asyncio.run(go())
