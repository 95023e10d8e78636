"""The one translator from redis-py exceptions to the domain's storage errors.

Every store module (redis_store, tickets, topups, observability) runs its Redis calls inside
`translated(endpoint)` and opens its pipelines with `translated_pipeline`, so a failover, a
timeout or a "not now" reply is `StoreUnavailable` (transient: the caller fails closed with 503
and retries) wherever it happens, and any other Redis refusal is `StoreDataError`. Nothing
redis-py raises reaches the transport as a 500.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import cast

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keeptrusts_authz.errors import StoreDataError, StoreError, StoreUnavailable
from keeptrusts_authz.store.connection import AsyncClient

# Classes that say "not now": the connection, a replica, a loading server, a cluster resharding
# or failing over (MOVED/ASK left over after the client's own redirects ran out).
_TRANSIENT_CLASSES: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # includes BusyLoadingError, MaxConnectionsError
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    BusyLoadingError,
    TryAgainError,
    ClusterDownError,
    MasterDownError,
    ClusterError,
    AskError,  # includes MovedError
    RedisClusterException,  # includes SlotNotCoveredError: no node serves the slot right now
    OSError,
    TimeoutError,
)
# The same replies when redis-py leaves them as plain ResponseError text (BUSY and NOREPLICAS
# always do; the others do inside a pipeline or script error).
_TRANSIENT_PREFIXES = (
    "BUSY",
    "NOREPLICAS",
    "OOM",
    "READONLY",
    "LOADING",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "MOVED ",
    "ASK ",
)


def store_int(value: object, default: int = 0) -> int:
    """An integer read back from Redis (a hash field, a script's reply): absent or "" is
    `default`; anything else that is not an integer is StoreDataError (a bug or tampered data),
    never a ValueError reaching the transport. The one parser for every store module."""
    if value is None or value == "":
        return default
    try:
        return int(cast(str, value))
    except (TypeError, ValueError):
        raise StoreDataError(f"not an integer in store: {str(value)[:40]!r}") from None


def _redis_internal_none(exc: BaseException) -> bool:
    """An AttributeError on None raised inside redis-py itself: its cluster client drops a node's
    connection during a failover and then calls `writelines`/`read` on the None it left behind."""
    if not isinstance(exc, AttributeError) or "'NoneType' object has no attribute" not in str(exc):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "/redis/" in frames[-1].filename.replace("\\", "/")


def is_transient(exc: BaseException) -> bool:
    """True when `exc` means "the store cannot answer right now" rather than "never"."""
    if isinstance(exc, StoreError):
        return exc.transient
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).lstrip("-").startswith(_TRANSIENT_PREFIXES)
    return _redis_internal_none(exc)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, ResponseError | ClusterError | RedisClusterException):
        return type(exc).__name__
    return "connection failed"


def unavailable(endpoint: str, exc: BaseException | None = None) -> StoreUnavailable:
    kind = "connection failed" if exc is None else _kind(exc)
    return StoreUnavailable(
        f"Redis store unavailable at {endpoint}: {kind}", {"endpoint": endpoint}
    )


def translate(exc: BaseException, endpoint: str) -> StoreError | None:
    """The storage error for a redis-py (or socket) exception; None for an exception that is not
    the store's (NOSCRIPT, which redis-py's Script handles by reloading; WATCH aborts, which the
    caller retries; or a bug of ours)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, NoScriptError | WatchError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    ):
        return None
    if is_transient(exc):
        return unavailable(endpoint, exc)
    if isinstance(exc, RedisError):
        return StoreDataError(f"Redis refused the command: {str(exc)[:200]}")
    return None


@contextlib.contextmanager
def translated(endpoint: str) -> Iterator[None]:
    """Run a block of Redis calls (sync or async) with its exceptions translated."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        err = translate(exc, endpoint)
        if err is None:
            raise
        raise err from exc


@contextlib.asynccontextmanager
async def translated_pipeline(
    client: AsyncClient, endpoint: str, *, transaction: bool
) -> AsyncIterator[Pipeline | ClusterPipeline]:
    """`async with client.pipeline(...)` with its opening and closing translated too. A cluster
    client that saw a connection error rediscovers the cluster when the next pipeline OPENS
    (ClusterPipeline.__aenter__), before the translated `execute`: with no node reachable that
    raised a raw RedisClusterException out of the store (it ended the store-integrity loop)."""
    with translated(endpoint):
        async with client.pipeline(transaction=transaction) as pipe:
            yield pipe


__all__ = ["is_transient", "translate", "translated", "translated_pipeline", "unavailable"]
