"""Build a redis.asyncio client from `RedisSettings` (standalone, cluster or sentinel)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keeptrusts_authz.config.models import RedisSettings

AsyncClient = Redis | RedisCluster

#: Connections per process. Callers beyond it wait (up to the socket timeout) for a free one
#: instead of failing, so a burst of concurrent Checks queues rather than erroring.
MAX_CONNECTIONS = 128


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


def connect(settings: RedisSettings) -> AsyncClient:
    """A client for `settings` (no I/O happens until the first command)."""
    kwargs = _common_kwargs(settings)
    if settings.mode == "cluster":
        kwargs.pop("retry_on_error")
        return RedisCluster.from_url(settings.url, **kwargs)
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


__all__ = ["AsyncClient", "connect", "describe"]
