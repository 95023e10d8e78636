"""Helpers shared by the wallet, store and CLI tests (real Redis via the `redis_url` fixture)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import redis
from redis.client import PubSub

from keeptrusts_authz.config import Config, parse_config
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.memory_store import MemoryWalletStore
from keeptrusts_authz.wallets.models import Policy, ReserveRequest
from keeptrusts_authz.wallets.ports import WalletStore
from keeptrusts_authz.wallets.service import WalletService

T = TypeVar("T")
ORG = "acme"
USD = 1_000_000  # micros per unit
EVENTS_CHANNEL = f"kt:{{{ORG}}}:events"  # pub/sub: funds:<wallet>, ticket:<id>


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_config(url: str, **enforcement: Any) -> Config:
    return parse_config(
        {
            "organization": {"id": ORG, "currency": "USD"},
            "consumer_groups": [
                {"name": "engineering", "api_key": "kt_cg_eng", "wallet_team_id": "team_eng"},
                {"name": "support", "api_key": "kt_cg_sup", "wallet_team_id": "team_support"},
                {"name": "ops", "api_key": "kt_cg_ops", "wallet_team_id": "team_ops"},
            ],
            "enforcement": enforcement,
            # generous: the test machine is shared and can stall for a moment under load
            "redis": {"url": url, "socket_timeout_seconds": 15},
        }
    )


@asynccontextmanager
async def wallet_service(url: str, **enforcement: Any) -> AsyncIterator[WalletService]:
    cfg = make_config(url, **enforcement)
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    try:
        yield WalletService(store, cfg)
    finally:
        await store.close()


async def funded(svc: WalletService, **teams: int) -> None:
    """Credit the org with the sum and allocate each team its amount (micros)."""
    await svc.credit(sum(teams.values()) + 1000 * USD, "USD", "seed", "test")
    for team, amount in teams.items():
        await svc.allocate(f"team:{team}", amount, "USD", "seed", "test")


def rid() -> str:
    return "r_" + uuid.uuid4().hex[:24]


def reserve_req(
    amount: int,
    candidates: tuple[str, ...] = ("team:team_eng",),
    policy: Policy = "block",
    *,
    reservation_id: str | None = None,
    overdraft: str | None = None,
    ttl_ms: int = 600_000,
    team: str = "team_eng",
) -> ReserveRequest:
    return ReserveRequest(
        reservation_id=reservation_id or rid(),
        candidates=candidates,
        amount=amount,
        policy=policy,
        overdraft_wallet=overdraft,
        ttl_ms=ttl_ms,
        team=team,
        group="engineering",
        user="alice",
        model="gpt-4o",
    )


def raw_state(url: str) -> tuple[dict[str, dict[str, str]], int]:
    """Every wallet hash and the ledger length, read directly (for 'untouched' assertions)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        prefix = f"kt:{{{ORG}}}:"
        wallets = {
            key: client.hgetall(key) for key in sorted(client.scan_iter(match=prefix + "w:*"))
        }
        return wallets, int(client.xlen(prefix + "ledger"))
    finally:
        client.close()


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


@contextmanager
def events_subscriber(url: str) -> Iterator[PubSub]:
    """A subscriber on the org's events channel, confirmed before it is handed out."""
    client = sync_client(url)
    pubsub = client.pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    deadline = time.monotonic() + 5
    while True:
        msg = pubsub.get_message(timeout=0.1)
        if msg is not None and msg["type"] == "subscribe":
            break
        assert time.monotonic() < deadline, "subscription not confirmed"
    try:
        yield pubsub
    finally:
        pubsub.close()
        client.close()


def drain_events(pubsub: PubSub, quiet: float = 0.3) -> list[str]:
    """Every message received until nothing arrives for `quiet` seconds."""
    out: list[str] = []
    while True:
        msg = pubsub.get_message(timeout=quiet)
        if msg is None:
            return out
        if msg["type"] == "message":
            assert msg["channel"] == EVENTS_CHANNEL
            out.append(str(msg["data"]))


class Backend:
    """One storage backend for the wallet-semantics tests (alisaifee/limits' `all_storage`):
    the real Redis with its Lua scripts, or the in-memory twin (wallets.memory_store)."""

    def __init__(self, name: str, url: str | None = None) -> None:
        self.name = name
        self.url = url
        self._memory: MemoryWalletStore | None = None

    @asynccontextmanager
    async def service(self, **enforcement: Any) -> AsyncIterator[WalletService]:
        if self.url is not None:
            async with wallet_service(self.url, **enforcement) as svc:
                yield svc
            return
        cfg = make_config("redis://unused:6379/0", **enforcement)
        yield WalletService(self.new_store(cfg), cfg)

    def new_store(self, cfg: Config) -> WalletStore:
        """A fresh, empty store of this backend for `cfg`."""
        if self.url is not None:
            client = sync_client(self.url)
            client.flushall()
            client.close()
            return RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
        self._memory = MemoryWalletStore(cfg.organization.id)
        return self._memory

    def config(self) -> Config:
        return make_config(self.url or "redis://unused:6379/0")

    def state(self) -> tuple[dict[str, Any], int]:
        """Every wallet and the ledger length, read beside the service (for 'untouched')."""
        if self.url is not None:
            return raw_state(self.url)
        assert self._memory is not None
        return (
            {wid: dict(w) for wid, w in self._memory._s.wallets.items()},
            len(self._memory._s.ledger),
        )
