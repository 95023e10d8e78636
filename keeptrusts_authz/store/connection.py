"""Build a redis.asyncio client from `RedisSettings` (standalone, cluster or sentinel)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.config.models import RedisSettings

AsyncClient = Redis | RedisCluster
log = logging.getLogger(__name__)

#: Connections per process. Callers beyond it wait (up to the socket timeout) for a free one
#: instead of failing, so a burst of concurrent Checks queues rather than erroring.
MAX_CONNECTIONS = 128
#: Connections per cluster node (redis-py's async cluster refuses beyond it, never waits).
CLUSTER_NODE_CONNECTIONS = 8 * MAX_CONNECTIONS


def describe(settings: RedisSettings) -> str:
    """`host:port[,host:port]` of the settings' URL, without user, password or database."""
    parsed = urlparse(settings.url)
    netloc = parsed.netloc.rpartition("@")[2]
    return netloc or settings.url.split("://", 1)[-1].split("/", 1)[0]


def _common_kwargs(settings: RedisSettings) -> dict[str, Any]:
    # Every script is idempotent on retry (reservation ids, idempotency keys, closed states), so
    # a short bounded retry on connection errors is safe.
    return {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def _sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """`redis+sentinel://[:password@]host1:26379,host2:26379/0` -> hosts, connection kwargs."""
    rest = url.split("://", 1)[-1]
    auth, _, hostpart = rest.rpartition("@")
    hostpart, _, db = hostpart.partition("/")
    hosts: list[tuple[str, int]] = []
    for item in hostpart.split(","):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port) if host else 26379))
    extra: dict[str, Any] = {}
    if auth:
        user, sep, password = auth.partition(":")
        extra["password"] = password if sep else user
        if sep and user:
            extra["username"] = user
    if db.isdigit():
        extra["db"] = int(db)
    return hosts, extra


class ClusterGate:
    """At most MAX_CONNECTIONS calls in flight for one organization on a cluster client; the
    rest wait (up to
    the socket timeout, then StoreUnavailable like the blocking pool).

    redis-py's async RedisCluster has no blocking pool: a call beyond `max_connections` on a
    node raises MaxConnectionsError at once (redis/redis-py#3135; the BlockingConnectionPool
    answer of #3359 is for the sync client only), so a burst of 200 concurrent Checks got about
    half refused. Gating below the per-node limit turns the burst into a queue."""

    def __init__(self, limit: int, timeout: float) -> None:
        self._sem = asyncio.Semaphore(limit)
        self._timeout = timeout

    async def __aenter__(self) -> None:
        try:
            await asyncio.wait_for(self._sem.acquire(), self._timeout)
        except TimeoutError:
            raise RedisConnectionError(
                f"no free cluster connection within {self._timeout:.1f}s"
            ) from None

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


def cluster_gate(client: AsyncClient, timeout: float) -> ClusterGate | None:
    """A gate for one organization's store on a cluster client (None for a standalone or
    Sentinel client: their blocking pool already waits). Per organization, not per client: an
    org's keys share one slot, hence one node, so a node that is down (its calls hanging until
    the socket timeout) fills only its own orgs' gates, never another org's."""
    return ClusterGate(MAX_CONNECTIONS, timeout) if isinstance(client, RedisCluster) else None


def connect(settings: RedisSettings) -> AsyncClient:
    """A client for `settings` (no I/O happens until the first command)."""
    kwargs = _common_kwargs(settings)
    if settings.mode == "cluster":
        kwargs.pop("retry_on_error")
        # Per node: room for several organizations' gates (MAX_CONNECTIONS each) on one node.
        return RedisCluster.from_url(
            settings.url, max_connections=CLUSTER_NODE_CONNECTIONS, **kwargs
        )
    if settings.mode == "sentinel":
        assert settings.sentinel_master is not None
        hosts, extra = _sentinel_hosts(settings.url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts,
            socket_timeout=settings.socket_timeout_seconds,
            socket_connect_timeout=settings.socket_timeout_seconds,
            sentinel_kwargs={"password": extra.get("password")} if "password" in extra else None,
        )
        client: Redis = sentinel.master_for(settings.sentinel_master, **kwargs, **extra)
        return client
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=MAX_CONNECTIONS,
        timeout=max(settings.socket_timeout_seconds, 1.0),
        **kwargs,
    )
    return Redis.from_pool(pool)


class MasterWatch:
    """Sentinel mode: keep the pool on the CURRENT master.

    redis-py's SentinelManagedConnection only leaves a master when it answers READONLY, so after
    a failover the pooled connections keep writing to the old master until it is demoted. This
    asks the Sentinels for the master every `interval` seconds (and at once via `nudge()` after
    a NOREPLICAS/READONLY reply) and, when it moved, drops every connection of the pool: idle
    ones at once, busy ones when they come back (redis-py reconnects through Sentinel). A no-op
    for standalone and cluster clients."""

    def __init__(self, client: AsyncClient, interval: float = 0.5) -> None:
        pool = client.connection_pool if isinstance(client, Redis) else None
        self._pool = pool if isinstance(pool, SentinelConnectionPool) else None
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.moves = 0

    async def verify(self) -> bool:
        """Ask the Sentinels once; True when the master moved (the pool was reset)."""
        if self._pool is None:
            return False
        before = self._pool.master_address
        after = await self._pool.get_master_address()  # type: ignore[no-untyped-call]
        if before is None or tuple(after) == tuple(before):
            return False
        self.moves += 1
        log.warning("Redis master moved from %s:%s to %s:%s", *before, *after)
        await self._pool.disconnect(inuse_connections=True)
        return True

    def nudge(self) -> None:
        """Check now (a write was refused with NOREPLICAS or READONLY)."""
        self._wake.set()

    def start(self) -> None:
        if self._pool is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="keeptrusts-redis-master-watch"
            )

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.verify()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("cannot ask the Sentinels for the master: %s", exc)

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


__all__ = ["AsyncClient", "MasterWatch", "connect", "describe"]
