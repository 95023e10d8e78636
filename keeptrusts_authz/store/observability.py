"""Redis access for observability (metrics, alerts, reports). Owned by the observability issue.

Two clients, both built from `RedisSettings`:

- `WalletSnapshotReader` is SYNCHRONOUS: the Prometheus collector runs on the metrics HTTP thread,
  so it must not touch the server's asyncio loop. One pipelined round trip reads the wallet id
  set, every known wallet hash, the usage counters, the daily burn hashes and the reservation
  index.
- `ObservabilityStore` is async: the alert engine (wallet reads, the dedupe script) and the period
  reads of the chargeback report.

Keys read here and written by settle.lua / expire.lua in the same script as the ledger entry (so
they never disagree with it; nothing in Python re-reads the ledger for them):

- `usage` hash: `spend|<team>|<group>|<estimated 0/1>|<model label>` -> micros,
  `requests|<team>|<group>|<model label>` -> count, `tokens|<team>|<group>|<kind>|<model label>`
  -> count (kind input/output/cached)
- `burn:<yyyy-mm-dd>` hash: wallet id -> micros spent that UTC day (settle + expire), ~8-day TTL

Keys this module adds (all under the org's hash tag `kt:{org}:`):

- `alerts:<yyyy-mm>` hash: dedupe field (`<wallet>|threshold|80`, `<wallet>|status|low`) -> event id
- `events` stream: one entry per alert event (capped at ~10k)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.sentinel import Sentinel as SyncSentinel

from keeptrusts_authz.config.models import RedisSettings
from keeptrusts_authz.store.connection import AsyncClient, _sentinel_hosts, connect, describe
from keeptrusts_authz.store.errors import store_int, translated, translated_pipeline
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.burn import BurnWindow, burn_days, burn_window_start
from keeptrusts_authz.wallets.models import FUNDED_FIELD, WALLET_FIELDS

ALERT_TTL_SECONDS = 62 * 86400
EVENTS_MAXLEN = 10_000

SyncClient = redis.Redis | SyncRedisCluster

# Dedupe + event append in ONE script: the first caller for a field appends the event, every
# later caller (same replica or another) gets nil. KEYS[1] alerts hash of the period,
# KEYS[2] events stream. ARGV[1] dedupe field, ARGV[2] hash TTL s, ARGV[3] stream cap,
# ARGV[4..] event field/value pairs.
_RECORD_EVENT_LUA = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '-') == 0 then return false end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"""


def wallet_record(raw: Mapping[str, str]) -> dict[str, int]:
    return {f: store_int(raw.get(f)) for f in (*WALLET_FIELDS, FUNDED_FIELD)}


# -- synchronous scrape-time reader ---------------------------------------------------------------


def connect_sync(settings: RedisSettings) -> SyncClient:
    """A synchronous client for `settings` (used only on the metrics thread)."""
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
    }
    if settings.mode == "cluster":
        return SyncRedisCluster.from_url(settings.url, **kwargs)
    if settings.mode == "sentinel":
        assert settings.sentinel_master is not None
        hosts, extra = _sentinel_hosts(settings.url)
        sentinel = SyncSentinel(  # type: ignore[no-untyped-call]
            hosts,
            socket_timeout=settings.socket_timeout_seconds,
            socket_connect_timeout=settings.socket_timeout_seconds,
            sentinel_kwargs={"password": extra.get("password")} if "password" in extra else None,
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.sentinel_master, **kwargs, **extra
        )
        return client
    return redis.Redis.from_url(settings.url, **kwargs)


@dataclass(frozen=True)
class WalletSnapshot:
    """What one scrape reads: wallet hashes, burn per wallet over the window, reservations, and
    the raw usage counters (field of the `usage` hash -> integer)."""

    wallets: dict[str, dict[str, int]]
    burn: dict[str, int]  # wallet id -> micros spent since `burn_since`
    burn_since: float
    open_reservations: int
    overdue_reservations: int
    taken_at: float
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def burn_window(self) -> BurnWindow:
        return BurnWindow(self.burn, self.burn_since, self.taken_at)


class WalletSnapshotReader:
    """Reads a `WalletSnapshot` in one pipelined round trip (two only when the wallet set changed
    since the previous read: the ids of new wallets are known only after SMEMBERS)."""

    def __init__(self, client: SyncClient, org_id: str, *, endpoint: str = "redis") -> None:
        self._client = client
        self.keys = Keys(org_id)
        self._endpoint = endpoint
        self._known: list[str] = []

    @classmethod
    def from_settings(cls, settings: RedisSettings, org_id: str) -> WalletSnapshotReader:
        return cls(connect_sync(settings), org_id, endpoint=describe(settings))

    def close(self) -> None:
        self._client.close()

    def read(self, now: float | None = None) -> WalletSnapshot:
        now = time.time() if now is None else now
        k = self.keys
        days = burn_days(now)
        known = list(self._known)
        with translated(self._endpoint):
            pipe = self._client.pipeline(transaction=False)
            pipe.smembers(k.wallets)
            for wid in known:
                pipe.hgetall(k.wallet(wid))
            for day in days:
                pipe.hgetall(k.burn(day))
            pipe.hgetall(k.usage)
            pipe.zcard(k.deadlines)
            pipe.zcount(k.deadlines, "-inf", int(now * 1000))
            res = pipe.execute()
            ids = sorted(str(m) for m in res[0])
            raws: dict[str, dict[str, str]] = dict(zip(known, res[1 : 1 + len(known)], strict=True))
            missing = [wid for wid in ids if wid not in raws]
            if missing:
                pipe = self._client.pipeline(transaction=False)
                for wid in missing:
                    pipe.hgetall(k.wallet(wid))
                raws.update(zip(missing, pipe.execute(), strict=True))
        self._known = ids
        off = 1 + len(known)
        burn: dict[str, int] = {}
        for bucket in res[off : off + len(days)]:
            for wid, micros in bucket.items():
                burn[wid] = burn.get(wid, 0) + store_int(micros)
        usage_raw, open_count, overdue = res[off + len(days) : off + len(days) + 3]
        wallets = {wid: wallet_record(raws[wid]) for wid in ids if raws.get(wid)}
        return WalletSnapshot(
            wallets=wallets,
            burn=burn,
            burn_since=burn_window_start(now),
            open_reservations=int(open_count),
            overdue_reservations=int(overdue),
            taken_at=now,
            usage={str(f): store_int(v) for f, v in usage_raw.items()},
        )


# -- async: alerts, reports ---------------------------------------------------------------------


class ObservabilityStore:
    def __init__(self, client: AsyncClient, org_id: str, *, endpoint: str = "redis") -> None:
        self._client = client
        self.keys = Keys(org_id)
        self.org_id = org_id
        self._endpoint = endpoint
        self._record_event = client.register_script(_RECORD_EVENT_LUA)

    @classmethod
    def from_settings(cls, settings: RedisSettings, org_id: str) -> ObservabilityStore:
        return cls(connect(settings), org_id, endpoint=describe(settings))

    async def close(self) -> None:
        await self._client.aclose()

    async def _io(self, awaitable: Awaitable[Any]) -> Any:
        with translated(self._endpoint):
            return await awaitable

    @property
    def events_key(self) -> str:
        return self.keys.prefix + "events"

    def alerts_key(self, period: str) -> str:
        return self.keys.prefix + "alerts:" + period

    # alerts -------------------------------------------------------------------------------------

    async def wallet_ids(self) -> list[str]:
        """Every wallet id of the org, sorted."""
        members = await self._io(self._client.smembers(self.keys.wallets))
        return sorted(str(m) for m in members)

    async def wallets(self, ids: Iterable[str]) -> dict[str, dict[str, int]]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        async with translated_pipeline(self._client, self._endpoint, transaction=False) as pipe:
            for wid in wanted:
                pipe.hgetall(self.keys.wallet(wid))
            raws = await self._io(pipe.execute())
        return {wid: wallet_record(raw) for wid, raw in zip(wanted, raws, strict=True) if raw}

    async def record_event(self, period: str, dedupe: str, fields: Mapping[str, str]) -> str | None:
        """Append an event unless `dedupe` was already recorded for `period`; its id, or None."""
        args: list[str] = [dedupe, str(ALERT_TTL_SECONDS), str(EVENTS_MAXLEN)]
        for name, value in fields.items():
            args += [name, value]
        res = await self._io(
            self._record_event(keys=[self.alerts_key(period), self.events_key], args=args)
        )
        return None if res is None else str(res)

    async def events(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        rows = await self._io(self._client.xrevrange(self.events_key, count=count))
        return [(str(i), dict(f)) for i, f in rows]

    async def denial_counters(self, month: str) -> dict[str, int]:
        raw = await self._io(self._client.hgetall(self.keys.stats(month)))
        return {str(f): store_int(v) for f, v in raw.items()}


__all__ = [
    "ObservabilityStore",
    "WalletSnapshot",
    "WalletSnapshotReader",
    "connect_sync",
    "wallet_record",
]
