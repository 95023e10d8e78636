"""The one translator from redis-py exceptions to storage errors (no Redis needed)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    DataError,
    MasterDownError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from keeptrusts_authz.errors import StoreDataError, StoreError, StoreUnavailable
from keeptrusts_authz.store.errors import is_transient, store_int, translate, translated

EP = "10.0.0.7:6379"

FAILOVER = [
    RedisConnectionError("Connection closed by server."),
    RedisTimeoutError("Timeout reading from socket"),
    BusyLoadingError("Redis is loading the dataset in memory"),
    MaxConnectionsError("Too many connections"),
    ClusterDownError("The cluster is down"),
    MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    TryAgainError("Multiple keys request during rehashing of slot"),
    MovedError("3999 127.0.0.1:6381"),
    AskError("3999 127.0.0.1:6381"),
    ReadOnlyError("You can't write against a read only replica."),
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    SlotNotCoveredError("Command # 1 (EVALSHA) failed: no node serves slot 12182"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    TimeoutError(),
]

REPLY_TEXTS = [
    "OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY You can't write against a read only replica.",
    "LOADING Redis is loading the dataset in memory",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "MASTERDOWN Link with MASTER is down",
    "NOREPLICAS Not enough good replicas to write.",
    "MOVED 3999 127.0.0.1:6381",
    "ASK 3999 127.0.0.1:6381",
]


@pytest.mark.parametrize("exc", FAILOVER, ids=lambda e: type(e).__name__)
def test_every_failover_exception_is_store_unavailable(exc: BaseException) -> None:
    assert is_transient(exc)
    err = translate(exc, EP)
    assert isinstance(err, StoreUnavailable)
    assert err.transient and err.http_status == 503
    assert err.details == {"endpoint": EP}
    assert EP in err.message


@pytest.mark.parametrize("text", REPLY_TEXTS, ids=lambda t: t.split()[0])
def test_not_now_reply_texts_are_store_unavailable(text: str) -> None:
    exc = ResponseError(text)
    assert is_transient(exc)
    assert isinstance(translate(exc, EP), StoreUnavailable)


def test_cluster_client_writelines_on_a_dropped_connection_is_store_unavailable() -> None:
    """redis-py's cluster client, failing over inside evalsha, writes to a connection whose
    writer it already dropped: the AttributeError comes from redis-py's own code."""

    async def provoke() -> AttributeError:
        conn = Connection(host="127.0.0.1", port=1)
        try:
            await conn._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
        except AttributeError as exc:
            return exc
        raise AssertionError("expected redis-py to fail on its dropped writer")

    exc = asyncio.run(provoke())
    assert "writelines" in str(exc)
    assert is_transient(exc)
    assert isinstance(translate(exc, EP), StoreUnavailable)

    with pytest.raises(StoreUnavailable) as info, translated(EP):
        raise exc
    assert info.value.__cause__ is exc


def test_our_own_attribute_error_is_not_hidden() -> None:
    with pytest.raises(AttributeError), translated(EP):
        None.writelines([])  # type: ignore[attr-defined]
    assert translate(AttributeError("'NoneType' object has no attribute 'x'"), EP) is None


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("ERR wrong number of arguments for 'hset' command"),
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("ERR user_script:12: invalid amount"),
        DataError("Invalid input of type: 'NoneType'"),
    ],
    ids=lambda e: str(e).split()[0],
)
def test_other_refusals_are_store_data_errors(exc: BaseException) -> None:
    assert not is_transient(exc)
    err = translate(exc, EP)
    assert isinstance(err, StoreDataError) and not err.transient


@pytest.mark.parametrize(
    "exc",
    [NoScriptError("NOSCRIPT No matching script."), WatchError("Watched variable changed.")],
)
def test_noscript_and_watch_pass_through_for_their_handlers(exc: BaseException) -> None:
    assert translate(exc, EP) is None
    with pytest.raises(type(exc)), translated(EP):
        raise exc


def test_store_errors_pass_unchanged_and_bugs_are_not_translated() -> None:
    original = StoreUnavailable("x")
    assert translate(original, EP) is original
    with pytest.raises(StoreUnavailable) as info, translated(EP):
        raise original
    assert info.value is original
    with pytest.raises(KeyError), translated(EP):
        raise KeyError("bug")
    assert issubclass(StoreUnavailable, StoreError) and issubclass(StoreDataError, StoreError)


def test_async_block_is_translated() -> None:
    async def call() -> None:
        with translated(EP):
            await asyncio.sleep(0)
            raise ClusterDownError("The cluster is down")

    with pytest.raises(StoreUnavailable):
        asyncio.run(call())


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 7), ("", 7), ("0", 0), ("-12", -12), (b"5", 5), (42, 42)]
)
def test_store_int_reads_integers_and_defaults_when_absent(value: object, expected: int) -> None:
    assert store_int(value, default=7) == expected


@pytest.mark.parametrize("value", ["1.5", "abc", "12x", [1], object()])
def test_store_int_refuses_anything_else_as_store_data(value: object) -> None:
    # a ticket, top-up, wallet or scrape field that does not parse is tampered data, never a
    # ValueError/TypeError reaching the transport
    with pytest.raises(StoreDataError, match="not an integer in store"):
        store_int(value)
