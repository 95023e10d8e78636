"""Cost tickets and wallet events in Redis (used by keeptrusts_authz.api for the `hold` policy).

Keys (same `{org}` hash tag as the wallets, docs/ARCHITECTURE.md):

- `kt:{org}:t:<ticket_id>` (hash, 7 days TTL): id, status, team, group, model, user, amount
  (micros), created_ms, waiting, decided_by, decided_ms, reason, funding, candidates, overdraft.
- `kt:{org}:tickets` (zset): ticket id -> created ms, the listing index (trimmed to 7 days).

Events: one pub/sub channel per organization, `kt:{org}:events` (`Keys.events_channel`), with
messages `funds:<wallet_id>` (money arrived in a wallet) and `ticket:<ticket_id>` (a ticket was
decided). The `funds:` messages are published by the wallet Lua scripts themselves, in the same
script as the balance change (credit, reclaim: `org`; allocate, transfer: the destination; settle
below the reservation, release: the funded wallet), so a move made by any caller (the wallet API,
the CLI straight against Redis, the gateway's settles) wakes the waiters at once, exactly once.
`ticket:` messages come from ticket_transition.lua.
`EventHub` keeps ONE subscriber connection per process and wakes the waiters registered for a
message, so a held request waits on an asyncio.Event, never by polling Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, cast

from redis.exceptions import RedisError

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.store.connection import AsyncClient
from keeptrusts_authz.store.errors import store_int, translated, translated_pipeline
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import load_script_text
from keeptrusts_authz.wallets.models import TicketRecord
from keeptrusts_authz.wallets.ports import TicketConflict, TicketNotFound

_ENDPOINT = "redis (tickets)"  # in error messages (never credentials)

log = logging.getLogger(__name__)

TICKET_TTL_MS = 7 * 86_400_000
_FIELDS = (
    "id",
    "status",
    "team",
    "group",
    "model",
    "user",
    "amount",
    "created_ms",
    "waiting",
    "decided_by",
    "decided_ms",
    "reason",
    "funding",
    "candidates",
    "overdraft",
)


def _record(raw: dict[str, str]) -> TicketRecord:
    return TicketRecord(
        id=raw.get("id", ""),
        status=raw.get("status", ""),
        team=raw.get("team", ""),
        group=raw.get("group", ""),
        model=raw.get("model", ""),
        user=raw.get("user", ""),
        amount=store_int(raw.get("amount")),
        created_ms=store_int(raw.get("created_ms")),
        waiting=raw.get("waiting") == "1",
        decided_by=raw.get("decided_by", ""),
        decided_ms=store_int(raw.get("decided_ms")),
        reason=raw.get("reason", ""),
        funding=raw.get("funding", ""),
        candidates=tuple(c for c in raw.get("candidates", "").split(",") if c),
        overdraft=raw.get("overdraft", ""),
    )


class RedisTicketStore:
    """Tickets of ONE organization, plus its event channel."""

    def __init__(self, client: AsyncClient, org_id: str) -> None:
        self._client = client
        self.keys = Keys(org_id)
        self.index = self.keys.prefix + "tickets"
        self.channel = self.keys.events_channel
        self._transition = client.register_script(load_script_text("ticket_transition"))
        self.events = EventHub(client, self.channel)

    def ticket_key(self, ticket_id: str) -> str:
        return self.keys.prefix + "t:" + ticket_id

    async def _io(self, awaitable: Awaitable[Any]) -> Any:
        with translated(_ENDPOINT):
            return await awaitable

    async def close(self) -> None:
        await self.events.close()
        await self._client.aclose()

    async def open(
        self,
        *,
        team: str,
        group: str,
        model: str,
        user: str,
        amount: int,
        candidates: Iterable[str],
        overdraft: str,
    ) -> TicketRecord:
        now_ms = int(time.time() * 1000)
        ticket_id = "tk_" + uuid.uuid4().hex[:24]
        fields = {
            "id": ticket_id,
            "status": "pending",
            "team": team,
            "group": group,
            "model": model,
            "user": user,
            "amount": str(amount),
            "created_ms": str(now_ms),
            "waiting": "1",
            "decided_by": "",
            "decided_ms": "0",
            "reason": "",
            "funding": "",
            "candidates": ",".join(candidates),
            "overdraft": overdraft,
        }
        key = self.ticket_key(ticket_id)
        async with translated_pipeline(self._client, _ENDPOINT, transaction=True) as pipe:
            pipe.hset(key, mapping=cast(dict[Any, Any], fields))
            pipe.pexpire(key, TICKET_TTL_MS)
            pipe.zadd(self.index, {ticket_id: now_ms})
            pipe.zremrangebyscore(self.index, "-inf", now_ms - TICKET_TTL_MS)
            await self._io(pipe.execute())
        return _record(fields)

    async def get(self, ticket_id: str) -> TicketRecord | None:
        raw = await self._io(
            cast(Awaitable[dict[str, str]], self._client.hgetall(self.ticket_key(ticket_id)))
        )
        return _record(raw) if raw else None

    async def list(self, limit: int = 500) -> list[TicketRecord]:
        """Newest first."""
        ids = await self._io(self._client.zrevrange(self.index, 0, limit - 1))
        if not ids:
            return []
        async with translated_pipeline(self._client, _ENDPOINT, transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self.ticket_key(str(tid)))
            raws = await self._io(pipe.execute())
        return [_record(raw) for raw in raws if raw]

    async def transition(
        self, ticket_id: str, allowed: Iterable[str], new: str, *, publish: bool, **fields: str
    ) -> TicketRecord:
        """Atomically move a ticket from one of `allowed` statuses to `new` (setting `fields`)."""
        args: list[str] = [",".join(allowed), new, self.channel if publish else ""]
        args.append(f"ticket:{ticket_id}")
        for name, value in fields.items():
            if name not in _FIELDS:
                raise ValueError(f"unknown ticket field {name}")
            args += [name, value]
        res = await self._io(self._transition(keys=[self.ticket_key(ticket_id)], args=args))
        status = str(res[0])
        if status == "unknown":
            raise TicketNotFound(ticket_id)
        if status == "conflict":
            raise TicketConflict(str(res[1]))
        record = await self.get(ticket_id)
        if record is None:
            raise TicketNotFound(ticket_id)
        return record

    async def set_waiting(self, ticket_id: str, waiting: bool) -> None:
        key = self.ticket_key(ticket_id)
        async with translated_pipeline(self._client, _ENDPOINT, transaction=True) as pipe:
            pipe.exists(key)
            pipe.hset(key, "waiting", "1" if waiting else "0")
            pipe.pexpire(key, TICKET_TTL_MS)
            await self._io(pipe.execute())


class EventHub:
    """One pub/sub subscription per process; waiters register asyncio.Events by message."""

    def __init__(self, client: AsyncClient, channel: str) -> None:
        self._client = client
        self.channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.available = hasattr(client, "pubsub")  # the asyncio cluster client has none

    async def ready(self, timeout: float = 2.0) -> bool:
        """Start the subscriber if needed; True once the subscription is confirmed."""
        if not self.available or self._closed:
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kt-ticket-events")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    kind = message.get("type")
                    if kind == "subscribe":
                        self._ready.set()
                        backoff = 0.1
                    elif kind == "message":
                        self._dispatch(str(message.get("data", "")))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning(
                    "ticket event subscription lost (%s); resubscribing", type(exc).__name__
                )
            finally:
                self._ready.clear()
                self._wake_all()  # waiters re-check the store after a gap in the subscription
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, message: str) -> None:
        for event in tuple(self._waiters.get(message, ())):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def watch(self, messages: Iterable[str]) -> Iterator[asyncio.Event]:
        """An Event set when any of `messages` is published while inside the block."""
        event = asyncio.Event()
        keys = list(messages)
        for key in keys:
            self._waiters[key].add(event)
        try:
            yield event
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await stop_task(task)


__all__ = ["EventHub", "RedisTicketStore"]
