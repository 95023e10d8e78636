"""Top-up requests in Redis (wallets.topups).

Keys (the `{org}` hash tag of the wallets, docs/ARCHITECTURE.md):
- `kt:{org}:topup:<id>` (hash, 30 days TTL): id, status (pending|approved|denied), team, wallet,
  amount (micros), description, requested_by, created_ms, decided_by, decided_ms, reason, entry.
- `kt:{org}:topups` (zset): top-up id -> created ms, the listing index.

Approval is topup_approve.lua: the allocation from the org pool, its ledger entry and the
status change in one script; denial is ticket_transition.lua (compare-and-set on the status).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import Any, cast

from keeptrusts_authz.errors import StoreDataError
from keeptrusts_authz.store.connection import AsyncClient
from keeptrusts_authz.store.errors import store_int, translated, translated_pipeline
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import load_script_text
from keeptrusts_authz.wallets.models import OpResult, TopUpRecord
from keeptrusts_authz.wallets.ports import StoreRefused, TicketConflict, TicketNotFound

_ENDPOINT = "redis (top-ups)"  # in error messages (never credentials)

TOPUP_TTL_MS = 30 * 86_400_000
LIST_PAGE = 500


def _record(raw: dict[str, str]) -> TopUpRecord:
    return TopUpRecord(
        id=raw.get("id", ""),
        status=raw.get("status", ""),
        team=raw.get("team", ""),
        wallet=raw.get("wallet", ""),
        amount=store_int(raw.get("amount")),
        description=raw.get("description", ""),
        requested_by=raw.get("requested_by", ""),
        created_ms=store_int(raw.get("created_ms")),
        decided_by=raw.get("decided_by", ""),
        decided_ms=store_int(raw.get("decided_ms")),
        reason=raw.get("reason", ""),
        entry_id=raw.get("entry", ""),
    )


class RedisTopUpStore:
    def __init__(self, client: AsyncClient, org_id: str) -> None:
        self._client = client
        self.keys = Keys(org_id)
        self.index = self.keys.prefix + "topups"
        self._approve = client.register_script(load_script_text("topup_approve"))
        self._transition = client.register_script(load_script_text("ticket_transition"))

    def topup_key(self, topup_id: str) -> str:
        return self.keys.prefix + "topup:" + topup_id

    async def _io(self, awaitable: Awaitable[Any]) -> Any:
        with translated(_ENDPOINT):
            return await awaitable

    async def create(
        self, *, team: str, wallet: str, amount: int, description: str, requested_by: str
    ) -> TopUpRecord:
        topup_id = "tu_" + uuid.uuid4().hex[:24]
        now = int(time.time() * 1000)
        fields = {
            "id": topup_id,
            "status": "pending",
            "team": team,
            "wallet": wallet,
            "amount": str(amount),
            "description": description,
            "requested_by": requested_by,
            "created_ms": str(now),
        }
        key = self.topup_key(topup_id)
        async with translated_pipeline(self._client, _ENDPOINT, transaction=True) as pipe:
            pipe.hset(key, mapping=cast(dict[Any, Any], fields))
            pipe.pexpire(key, TOPUP_TTL_MS)
            pipe.zadd(self.index, {topup_id: now})
            pipe.zremrangebyscore(self.index, 0, now - TOPUP_TTL_MS)
            await self._io(pipe.execute())
        return _record(fields)

    async def get(self, topup_id: str) -> TopUpRecord | None:
        raw = await self._io(
            cast(Awaitable[dict[str, str]], self._client.hgetall(self.topup_key(topup_id)))
        )
        return _record(raw) if raw else None

    async def list(self) -> list[TopUpRecord]:
        """Every top-up of the last TOPUP_TTL_MS, newest first, read in pages of LIST_PAGE (never
        truncated: the index holds 30 days and TopUps caps the pending ones per team)."""
        out: list[TopUpRecord] = []
        start = 0
        while True:
            ids = await self._io(self._client.zrevrange(self.index, start, start + LIST_PAGE - 1))
            if not ids:
                return out
            async with translated_pipeline(self._client, _ENDPOINT, transaction=False) as pipe:
                for topup_id in ids:
                    pipe.hgetall(self.topup_key(str(topup_id)))
                raws = await self._io(pipe.execute())
            out += [_record(raw) for raw in raws if raw]
            if len(ids) < LIST_PAGE:
                return out
            start += LIST_PAGE

    async def _decided(self, topup_id: str) -> TopUpRecord:
        """The record a decision script just changed. Gone (its TTL ran out between the script
        and this read) is data the store did not expect: StoreDataError, not an assert."""
        record = await self.get(topup_id)
        if record is None:
            raise StoreDataError(f"top-up {topup_id} vanished right after its decision")
        return record

    async def approve(
        self, topup_id: str, wallet: str, *, actor: str, reason: str
    ) -> tuple[TopUpRecord, OpResult]:
        k = self.keys
        res = await self._io(
            self._approve(
                keys=[
                    k.ledger,
                    k.wallets,
                    k.wallet("org"),
                    k.wallet(wallet),
                    self.topup_key(topup_id),
                ],
                args=[actor, reason, k.events_channel, wallet],
            )
        )
        status = str(res[0])
        if status == "unknown":
            raise TicketNotFound(topup_id)
        if status == "conflict":
            raise TicketConflict(str(res[1]))
        if status == "insufficient":
            raise StoreRefused("insufficient", "org", store_int(str(res[2])))
        if status != "ok":
            raise StoreDataError(f"topup_approve.lua returned {status!r}")
        record = await self._decided(topup_id)
        op = OpResult(
            "allocate",
            str(res[1]),
            {"org": store_int(str(res[2])), wallet: store_int(str(res[3]))},
            False,
        )
        return record, op

    async def deny(self, topup_id: str, *, actor: str, reason: str) -> TopUpRecord:
        res = await self._io(
            self._transition(
                keys=[self.topup_key(topup_id)],
                args=[
                    "pending",
                    "denied",
                    "",
                    "",
                    "decided_by",
                    actor,
                    "decided_ms",
                    str(int(time.time() * 1000)),
                    "reason",
                    reason,
                ],
            )
        )
        status = str(res[0])
        if status == "unknown":
            raise TicketNotFound(topup_id)
        if status == "conflict":
            raise TicketConflict(str(res[1]))
        record = await self._decided(topup_id)
        return record


__all__ = ["RedisTopUpStore"]
