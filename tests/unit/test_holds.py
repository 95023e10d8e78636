"""The hold state machine (wallets/holds.py) on the in-memory stores: woken by the funds event
of a move, approved/denied tickets, timeouts. The same flows run through Envoy and Redis in
tests/api/test_holds.py."""

from __future__ import annotations

import asyncio
import time

from keeptrusts_authz.wallets.holds import DENIED_RETRY_AFTER, Holds
from keeptrusts_authz.wallets.memory_store import MemoryTicketStore, MemoryWalletStore
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import USD, make_config, reserve_req

HELD = ("team:team_eng",)


def stack(timeout: float = 5.0) -> tuple[WalletService, MemoryTicketStore, Holds]:
    cfg = make_config("redis://unused:6379/0")
    store = MemoryWalletStore(cfg.organization.id)
    tickets = MemoryTicketStore(store.events)
    svc = WalletService(store, cfg)
    # resync far above the test's waits: only an event can wake the waiter in time
    return svc, tickets, Holds(svc, tickets, timeout, resync_seconds=60)


async def pending(tickets: MemoryTicketStore) -> str:
    for _ in range(200):
        listed = await tickets.list()
        if listed and listed[0].waiting:
            return listed[0].id
        await asyncio.sleep(0.005)
    raise AssertionError("no waiting ticket")


def test_an_allocation_wakes_the_held_request_at_once() -> None:
    async def go() -> None:
        svc, tickets, holds = stack()
        await svc.credit(100 * USD, "USD", "seed", "t")
        req = reserve_req(2 * USD, HELD, "hold")
        waiter = asyncio.create_task(holds.resolve(req, None))
        ticket_id = await pending(tickets)
        started = time.monotonic()
        await svc.allocate("team:team_eng", 5 * USD, "USD", "fund", "t")
        out = await asyncio.wait_for(waiter, 2)
        assert time.monotonic() - started < 1.0
        assert (out.reason, out.ticket_id, out.proceeds) == ("hold_funded", ticket_id, True)
        ticket = await tickets.get(ticket_id)
        assert ticket is not None and (ticket.status, ticket.waiting) == ("funded", False)
        assert (await svc.wallet("team:team_eng")).reserved == 2 * USD

    asyncio.run(go())


def test_approved_ticket_is_funded_by_the_org_pool_once() -> None:
    async def go() -> None:
        svc, tickets, holds = stack()
        await svc.credit(100 * USD, "USD", "seed", "t")
        req = reserve_req(2 * USD, HELD, "hold")
        waiter = asyncio.create_task(holds.resolve(req, None))
        ticket_id = await pending(tickets)
        await tickets.transition(ticket_id, ("pending",), "approved", publish=True, funding="org")
        out = await asyncio.wait_for(waiter, 2)
        assert (out.reason, out.proceeds) == ("hold_approved", True)
        assert out.request is not None and out.request.candidates == ("org",)
        assert (await tickets.get(ticket_id)).status == "used"  # type: ignore[union-attr]
        # used once: a retry with the same ticket id waits again instead
        again = asyncio.create_task(holds.resolve(reserve_req(2 * USD, HELD, "hold"), ticket_id))
        second = await pending(tickets)
        assert second != ticket_id
        await tickets.transition(second, ("pending",), "denied", publish=True)
        denied = await asyncio.wait_for(again, 2)
        assert (denied.reason, denied.retry_after) == ("hold_denied", DENIED_RETRY_AFTER)

    asyncio.run(go())


def test_timeout_refuses_and_keeps_the_ticket_pending() -> None:
    async def go() -> None:
        svc, tickets, holds = stack(timeout=0.2)
        out = await holds.resolve(reserve_req(2 * USD, HELD, "hold"), None)
        assert (out.reason, out.proceeds, out.retry_after) == ("hold_timeout", False, 1)
        ticket = await tickets.get(out.ticket_id)
        assert ticket is not None and (ticket.status, ticket.waiting) == ("pending", False)
        assert await svc.wallets() == []

    asyncio.run(go())
