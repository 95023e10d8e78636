"""Cost tickets for the `hold` policy: the held Check waits on a ticket until funds or a decision.

Flow (called by gateway.admission when the reservation came back `hold`):
1. A retry carrying `x-keeptrusts-ticket: <id>` of an APPROVED ticket of the same consumer group
   (and an amount within the approved one) uses it once: funded from the org pool (`funding: org`)
   or charged to the team wallet as an approved overdraft (`funding: overdraft`).
2. Otherwise a ticket is opened (team, group, model, user, amount needed) and the Check waits up to
   `hold_timeout_seconds` on the organization's event channel (store.tickets.EventHub): a
   `funds:<wallet>` message for one of the request's cascade wallets, or `ticket:<id>` when the
   ticket is decided. `funds:` is published by the wallet Lua scripts in the same script as the
   balance change, so every way money arrives (API, CLI straight against Redis, settle/release
   refunds) wakes the waiter at once. No polling: between events the waiter sleeps on an
   asyncio.Event (plus one safety re-check every `resync_seconds`, for a message lost while the
   subscription was down or a client without pub/sub, e.g. the asyncio cluster client).
3. Funds arrived -> reserve again (ticket `funded`); approved -> reserve per the approval (ticket
   `used`); denied or timed out -> refused: 402 with the ticket id and Retry-After. A timed-out
   ticket stays `pending` so it can still be approved and the client can retry with its id.

Waiting for reserved money (`enforcement.wait_for_reserved_seconds`, the `block` policy; called by
gateway.admission after a `blocked` reserve): when a cascade wallet cannot pay now but could once
its in-flight reservations settle (available + reserved >= the amount), the Check waits on the
same `funds:<wallet>` wake-ups (no ticket) and reserves again; it gives up as soon as no wallet
can pay even with every reservation refunded (the money is really spent) or the wait runs out.
The reserve script stays the only place that decides: a retry never overspends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
from dataclasses import dataclass

from keeptrusts_authz.errors import KeeptrustsError
from keeptrusts_authz.wallets.models import (
    TICKET_ACTOR,
    ReserveRequest,
    ReserveResult,
    TicketRecord,
)
from keeptrusts_authz.wallets.ports import TicketConflict, TicketNotFound, TicketStore
from keeptrusts_authz.wallets.service import WalletService

log = logging.getLogger(__name__)

TICKET_ID = re.compile(r"^tk_[0-9a-f]{24}$")
DENIED_RETRY_AFTER = 300


@dataclass(frozen=True)
class HoldOutcome:
    """What the hold resolved to: a reservation that went through, or a refusal."""

    ticket_id: str
    reason: str  # hold_funded | hold_approved | hold_ticket_used | hold_denied | hold_timeout |
    #              hold_approved_unfunded
    request: ReserveRequest | None = None
    result: ReserveResult | None = None
    retry_after: int = 0
    waited: float = 0.0  # seconds the Check was held on its ticket (0 for a ticket used at once)

    @property
    def proceeds(self) -> bool:
        return self.result is not None and self.result.allowed


@dataclass(frozen=True)
class ReservedWait:
    """What a wait for reserved money resolved to."""

    reason: str  # reserved_wait_funded | reserved_wait_spent | reserved_wait_timeout
    result: ReserveResult | None = None
    waited: float = 0.0

    @property
    def proceeds(self) -> bool:
        return self.result is not None and self.result.allowed


class Holds:
    def __init__(
        self,
        wallets: WalletService,
        tickets: TicketStore,
        timeout_seconds: float,
        resync_seconds: float = 5.0,
        reserved_resync_seconds: float = 0.25,
    ) -> None:
        self._wallets = wallets
        self._tickets = tickets
        self._timeout = timeout_seconds
        self._resync = resync_seconds
        self._reserved_resync = reserved_resync_seconds

    @property
    def timeout_retry_after(self) -> int:
        return max(1, math.ceil(self._timeout))

    async def resolve(self, req: ReserveRequest, ticket_header: str | None) -> HoldOutcome:
        if ticket_header:
            used = await self._use_approved(req, ticket_header.strip())
            if used is not None:
                return used
        ticket = await self._tickets.open(
            team=req.team,
            group=req.group,
            model=req.model,
            user=req.user,
            amount=req.amount,
            candidates=req.candidates,
            overdraft=req.overdraft_wallet or "",
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcome = await self._wait(req, ticket)
            return dataclasses.replace(outcome, waited=loop.time() - started)
        finally:
            with contextlib.suppress(KeeptrustsError):
                await self._tickets.set_waiting(ticket.id, False)

    async def _wait(self, req: ReserveRequest, ticket: TicketRecord) -> HoldOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        hub = self._tickets.events
        await hub.ready()
        messages = [f"funds:{w}" for w in req.candidates] + [f"ticket:{ticket.id}"]
        with hub.watch(messages) as event:
            while True:
                event.clear()  # before looking, so an event during the look is not lost
                current = await self._tickets.get(ticket.id)
                if current is not None and current.status == "approved":
                    return await self._fund_approved(req, current, "hold_approved")
                if current is not None and current.status == "denied":
                    return HoldOutcome(ticket.id, "hold_denied", retry_after=DENIED_RETRY_AFTER)
                funded = await self._try_funds(req)
                if funded is not None:
                    with contextlib.suppress(TicketConflict, TicketNotFound):
                        await self._tickets.transition(
                            ticket.id, ("pending",), "funded", publish=False
                        )
                    return HoldOutcome(ticket.id, "hold_funded", req, funded)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return HoldOutcome(
                        ticket.id, "hold_timeout", retry_after=self.timeout_retry_after
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self._resync))

    async def wait_for_reserved(self, req: ReserveRequest, timeout: float) -> ReservedWait:
        """`block` with money in flight: wait (at most `timeout` s) for settles to refund a cascade
        wallet enough to pay `req`, and reserve it then (module docstring)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        hub = self._tickets.events
        await hub.ready(timeout=min(timeout, 2.0))
        with hub.watch(f"funds:{w}" for w in req.candidates) as event:
            while True:
                event.clear()  # before looking, so a settle during the look is not lost
                payable = False
                for wallet_id in req.candidates:
                    record = await self._wallets.store.wallet(wallet_id)
                    if record is None:
                        continue
                    if record["balance"] >= req.amount:
                        result = await self._wallets.reserve(req)
                        if result.allowed:
                            return ReservedWait(
                                "reserved_wait_funded", result, loop.time() - started
                            )
                        payable = True  # another waiter took it first: look again
                        break
                    if record["balance"] + record["reserved"] >= req.amount:
                        payable = True
                if not payable:
                    return ReservedWait("reserved_wait_spent", waited=loop.time() - started)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return ReservedWait("reserved_wait_timeout", waited=loop.time() - started)
                # A settle at its full reservation (or an expiry) refunds nothing and publishes
                # nothing: the short re-check sees that the money is spent.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self._reserved_resync))

    async def _try_funds(self, req: ReserveRequest) -> ReserveResult | None:
        """Reserve again only when a cascade wallet now looks able to pay (a refused hold
        reservation would count as another `held` denial)."""
        for wallet_id in req.candidates:
            record = await self._wallets.store.wallet(wallet_id)
            if record is not None and record["balance"] >= req.amount:
                break
        else:
            return None
        result = await self._wallets.reserve(req)
        return result if result.allowed else None

    async def _fund_approved(
        self, req: ReserveRequest, ticket: TicketRecord, reason: str
    ) -> HoldOutcome:
        """Consume an approved ticket once and reserve per its funding."""
        try:
            await self._tickets.transition(ticket.id, ("approved",), "used", publish=False)
        except (TicketConflict, TicketNotFound):
            return HoldOutcome(ticket.id, "hold_denied", retry_after=DENIED_RETRY_AFTER)
        if ticket.funding == "overdraft":
            funded_req = dataclasses.replace(
                req, policy="warn", overdraft_wallet=ticket.overdraft or req.overdraft_wallet
            )
        else:
            funded_req = dataclasses.replace(
                req, candidates=("org",), policy="block", overdraft_wallet=None
            )
        # The reserve entry's actor marks the reservation ticket-funded (reports show its spend
        # as `ticket_funded_spent`, reports/chargeback.py).
        result = await self._wallets.reserve(funded_req, actor=f"{TICKET_ACTOR}{ticket.id}")
        if result.allowed:
            return HoldOutcome(ticket.id, reason, funded_req, result)
        # The org pool could not pay: keep the approval for a retry after it is credited.
        with contextlib.suppress(TicketConflict, TicketNotFound):
            await self._tickets.transition(ticket.id, ("used",), "approved", publish=False)
        return HoldOutcome(
            ticket.id, "hold_approved_unfunded", retry_after=self.timeout_retry_after
        )

    async def _use_approved(self, req: ReserveRequest, ticket_id: str) -> HoldOutcome | None:
        if not TICKET_ID.match(ticket_id):
            return None
        ticket = await self._tickets.get(ticket_id)
        if (
            ticket is None
            or ticket.status != "approved"
            or ticket.group != req.group
            or req.amount > ticket.amount
        ):
            return None
        return await self._fund_approved(req, ticket, "hold_ticket_used")


__all__ = ["TICKET_ID", "HoldOutcome", "Holds", "ReservedWait"]
