"""The wallet scripts publish `funds:<wallet>` on the org's events channel themselves, in the same
script as the balance change: exactly one message per move that brings money into a wallet,
none for replays, refusals, debits or moves that return nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.client import PubSub

from keeptrusts_authz.errors import InsufficientFunds
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.tickets import RedisTicketStore
from keeptrusts_authz.wallets.models import ReleaseRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import (
    EVENTS_CHANNEL,
    ORG,
    USD,
    drain_events,
    events_subscriber,
    funded,
    reserve_req,
    run,
    wallet_service,
)


def test_channel_is_the_one_the_waiters_subscribe_to(redis_url: str) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            tickets = RedisTicketStore(client, ORG)
            assert tickets.channel == tickets.events.channel == EVENTS_CHANNEL
        finally:
            await client.aclose()

    assert Keys(ORG).events_channel == EVENTS_CHANNEL
    run(go())


Step = Callable[[WalletService], Awaitable[Any]]


def published(url: str, setup: Step | None, step: Step) -> list[str]:
    """Messages published by `step` alone (after `setup`, whose messages are discarded)."""

    async def go(pubsub: PubSub) -> list[str]:
        async with wallet_service(url) as svc:
            if setup is not None:
                await setup(svc)
            drain_events(pubsub)
            await step(svc)
            return drain_events(pubsub)

    with events_subscriber(url) as pubsub:
        return run(go(pubsub))


def test_each_admin_move_publishes_once_naming_the_receiving_wallet(redis_url: str) -> None:
    with events_subscriber(redis_url) as pubsub:

        async def go() -> None:
            async with wallet_service(redis_url) as svc:
                await svc.credit(100 * USD, "USD", "", "a")
                assert drain_events(pubsub) == ["funds:org"]
                await svc.allocate("team:team_eng", 40 * USD, "USD", "", "a")
                assert drain_events(pubsub) == ["funds:team:team_eng"]  # created on the way
                await svc.allocate("team:team_eng", 1 * USD, "USD", "", "a")
                assert drain_events(pubsub) == ["funds:team:team_eng"]
                await svc.transfer(
                    "team:team_eng", "user:bob", 5 * USD, "USD", "", "a", team="team_eng"
                )
                assert drain_events(pubsub) == ["funds:user:bob"]
                await svc.transfer("user:bob", "team:team_support", 2 * USD, "USD", "", "a")
                assert drain_events(pubsub) == ["funds:team:team_support"]
                await svc.reclaim("team:team_support", 1 * USD, "USD", "", "a")
                assert drain_events(pubsub) == ["funds:org"]

        run(go())


def test_replays_and_refusals_publish_nothing(redis_url: str) -> None:
    with events_subscriber(redis_url) as pubsub:

        async def go() -> None:
            async with wallet_service(redis_url) as svc:
                await svc.credit(10 * USD, "USD", "", "a", idempotency_key="c-1")
                await svc.allocate("team:team_eng", 4 * USD, "USD", "", "a", "a-1")
                assert drain_events(pubsub) == ["funds:org", "funds:team:team_eng"]
                replay = await svc.allocate("team:team_eng", 4 * USD, "USD", "", "a", "a-1")
                assert replay.replayed
                assert (await svc.credit(10 * USD, "USD", "", "a", "c-1")).replayed
                with pytest.raises(InsufficientFunds):
                    await svc.allocate("team:team_eng", 100 * USD, "USD", "", "a")
                with pytest.raises(InsufficientFunds):
                    await svc.reclaim("team:team_eng", 100 * USD, "USD", "", "a")
                assert drain_events(pubsub) == []

        run(go())


def test_reserve_debits_publish_nothing(redis_url: str) -> None:
    async def step(svc: WalletService) -> None:
        assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"
        assert (await svc.reserve(reserve_req(99 * USD, policy="hold"))).outcome == "hold"

    assert published(redis_url, lambda svc: funded(svc, team_eng=10 * USD), step) == []


def test_settle_publishes_only_when_money_returns(redis_url: str) -> None:
    with events_subscriber(redis_url) as pubsub:

        async def go() -> None:
            async with wallet_service(redis_url) as svc:
                await funded(svc, team_eng=10 * USD)
                under, exact, over = reserve_req(3 * USD), reserve_req(2 * USD), reserve_req(USD)
                for req in (under, exact, over):
                    await svc.reserve(req)
                drain_events(pubsub)
                await svc.settle(SettleRequest(under.reservation_id, 1 * USD, False))
                assert drain_events(pubsub) == ["funds:team:team_eng"]
                await svc.settle(SettleRequest(under.reservation_id, 1 * USD, False))
                assert drain_events(pubsub) == []  # already closed
                await svc.settle(SettleRequest(exact.reservation_id, 2 * USD, True))
                await svc.settle(SettleRequest(over.reservation_id, 2 * USD, False))
                assert drain_events(pubsub) == []  # nothing came back to the wallet

        run(go())


def test_release_publishes_the_funded_wallet(redis_url: str) -> None:
    with events_subscriber(redis_url) as pubsub:

        async def go() -> None:
            async with wallet_service(redis_url) as svc:
                await funded(svc, team_eng=1 * USD)
                req = reserve_req(10 * USD, ("team:team_eng", "org"))  # funded by the org pool
                assert (await svc.reserve(req)).wallet == "org"
                free = reserve_req(0)
                await svc.reserve(free)
                drain_events(pubsub)
                await svc.release(req.reservation_id, "provider 503")
                assert drain_events(pubsub) == ["funds:org"]
                await svc.release(req.reservation_id, "again")
                await svc.release(free.reservation_id)  # nothing was reserved
                assert drain_events(pubsub) == []

        run(go())


def test_settle_batch_publishes_one_message_per_refund(redis_url: str) -> None:
    reqs = [reserve_req(1 * USD) for _ in range(4)]

    async def setup(svc: WalletService) -> None:
        await funded(svc, team_eng=10 * USD)
        for r in reqs:
            await svc.reserve(r)

    async def step(svc: WalletService) -> None:
        await svc.settle_batch(
            [
                SettleRequest(reqs[0].reservation_id, 250_000, False),
                ReleaseRequest(reqs[1].reservation_id, "client went away"),
                SettleRequest(reqs[2].reservation_id, 1 * USD, False),  # no refund
                SettleRequest(reqs[0].reservation_id, 250_000, False),  # repeated
            ]
        )

    assert published(redis_url, setup, step) == ["funds:team:team_eng", "funds:team:team_eng"]


def test_expire_publishes_nothing(redis_url: str) -> None:
    """An expiry charges the whole estimate: the wallet's balance does not go up."""
    due = reserve_req(2 * USD, ttl_ms=1)

    async def setup(svc: WalletService) -> None:
        await funded(svc, team_eng=10 * USD)
        await svc.reserve(due)
        await asyncio.sleep(0.01)

    async def step(svc: WalletService) -> None:
        before = await svc.wallet("team:team_eng")
        assert [x.reservation_id for x in await svc.expire_due(10)] == [due.reservation_id]
        assert (await svc.wallet("team:team_eng")).balance == before.balance

    assert published(redis_url, setup, step) == []
