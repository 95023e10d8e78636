"""Team leads and their budget: re-split among the team's users (WalletService.team_move,
allocate / reclaim) and top-up requests, which billing approves (allocated from the org pool,
once) or denies. This module owns the top-up rules; storage is `TopUpStore` (store/topups.py)."""

from __future__ import annotations

import re

from keeptrusts_authz.errors import Conflict, InsufficientFunds, InvalidInput, KeeptrustsError
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.wallets.models import MAX_AMOUNT_MICROS, OpResult, TopUpRecord
from keeptrusts_authz.wallets.ports import StoreRefused, TicketConflict, TicketNotFound, TopUpStore

TOPUP_ID = re.compile(r"^tu_[0-9a-f]{24}$")
STATUSES = ("pending", "approved", "denied")
_MAX_TEXT = 500
# Pending top-ups one team may have at once: a team cannot bury older requests (or fill the
# store) by filing many; it waits for billing's decision on the ones it has.
MAX_PENDING_PER_TEAM = 20


class TooManyPendingTopUps(KeeptrustsError):
    def __init__(self, team_id: str, pending: int) -> None:
        super().__init__(
            "too_many_pending_topups",
            f"team {team_id} has {pending} pending top-up requests (at most "
            f"{MAX_PENDING_PER_TEAM}); wait for billing to decide on them",
            409,
            {"team_id": team_id, "pending": pending, "max_pending": MAX_PENDING_PER_TEAM},
        )


class UnknownTopUp(KeeptrustsError):
    def __init__(self, topup_id: str) -> None:
        super().__init__("unknown_topup", f"unknown top-up {topup_id}", 404, {"topup_id": topup_id})


def _text(value: str, field: str) -> str:
    if len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value):
        raise InvalidInput(
            f"{field}: at most {_MAX_TEXT} characters, no control characters", {"field": field}
        )
    return value


def _topup_id(topup_id: str) -> str:
    if not TOPUP_ID.match(topup_id):
        raise InvalidInput("topup_id: not a top-up id (tu_ + 24 hex)", {"field": "topup_id"})
    return topup_id


class TopUps:
    def __init__(self, store: TopUpStore, teams: set[str], currency: str) -> None:
        self._store = store
        self._teams = teams
        self._currency = currency

    async def request(
        self, team_id: str, amount: int, description: str, requested_by: str
    ) -> TopUpRecord:
        if team_id not in self._teams:
            raise InvalidInput(
                f"team_id: {team_id!r} is not a configured team", {"field": "team_id"}
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidInput("amount: must be greater than zero", {"field": "amount"})
        if amount > MAX_AMOUNT_MICROS:
            raise InvalidInput(
                f"amount: must be at most {format_micros(MAX_AMOUNT_MICROS)}", {"field": "amount"}
            )
        pending = sum(
            1 for t in await self._store.list() if t.team == team_id and t.status == "pending"
        )
        if pending >= MAX_PENDING_PER_TEAM:
            raise TooManyPendingTopUps(team_id, pending)
        return await self._store.create(
            team=team_id,
            wallet=f"team:{team_id}",
            amount=amount,
            description=_text(description, "description"),
            requested_by=requested_by,
        )

    async def get(self, topup_id: str) -> TopUpRecord:
        found = await self._store.get(_topup_id(topup_id))
        if found is None:
            raise UnknownTopUp(topup_id)
        return found

    async def list(self) -> list[TopUpRecord]:
        return await self._store.list()

    async def approve(self, topup_id: str, actor: str, reason: str) -> tuple[TopUpRecord, OpResult]:
        current = await self.get(topup_id)
        try:
            return await self._store.approve(
                topup_id, current.wallet, actor=actor, reason=_text(reason, "reason")
            )
        except TicketNotFound:
            raise UnknownTopUp(topup_id) from None
        except TicketConflict as exc:
            raise _decided(topup_id, exc.current) from None
        except StoreRefused as exc:
            raise InsufficientFunds(
                f"insufficient funds in org: {format_micros(exc.available)} {self._currency} "
                f"available, the top-up needs {format_micros(current.amount)} {self._currency}; "
                "it stays pending",
                {
                    "wallet": "org",
                    "available": format_micros(exc.available),
                    "requested": format_micros(current.amount),
                    "currency": self._currency,
                },
            ) from None

    async def deny(self, topup_id: str, actor: str, reason: str) -> TopUpRecord:
        await self.get(topup_id)
        try:
            return await self._store.deny(topup_id, actor=actor, reason=_text(reason, "reason"))
        except TicketNotFound:
            raise UnknownTopUp(topup_id) from None
        except TicketConflict as exc:
            raise _decided(topup_id, exc.current) from None


def _decided(topup_id: str, status: str) -> Conflict:
    return Conflict(
        f"top-up {topup_id} is already {status}", {"topup_id": topup_id, "status": status}
    )


__all__ = [
    "MAX_PENDING_PER_TEAM",
    "STATUSES",
    "TOPUP_ID",
    "TooManyPendingTopUps",
    "TopUps",
    "UnknownTopUp",
]
