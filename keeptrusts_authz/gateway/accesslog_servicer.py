"""envoy.service.accesslog.v3.AccessLogService: read each HTTP entry, queue its settlement.

Closing streams on a restart (issue 13): Envoy keeps an access-log stream open for ever and ALS
has no acknowledgement, so entries Envoy writes onto a stream the server cancels are lost (their
reservations expire at the estimate). `close_streams` (called once the gRPC server has sent
GOAWAY, so Envoy's next stream opens on a new connection: the replacement process on the same
port, or another replica) ends each stream just after it delivered a flush: Envoy sends one
message per `gateway.access_log_flush_ms` (render-envoy sets the buffer size so flushes are by
time, not size), so the end arrives while Envoy has nothing in flight, and its next flush goes to
the new stream. An idle stream is ended after three flush intervals without a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf import struct_pb2

from keeptrusts_authz.envoy_contract import (
    AUTHZ_NAMESPACE,
    AUTHZ_RESERVATION_ID,
    AUTHZ_WALLET,
    RESERVATION_HEADER,
    USAGE_NAMESPACE,
)
from keeptrusts_authz.gateway.reconcile import journaled_charge, settlement_for
from keeptrusts_authz.gateway.settler import Settler
from keeptrusts_authz.gateway.signing import ReservationSigner
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.wallets.models import SettleRequest

log = logging.getLogger(__name__)


def _scalar(value: struct_pb2.Value) -> Any:
    """One Struct value as Python, as json_format would give it, without its generic walk: the
    Lua filter and the Check write flat namespaces of strings, numbers and booleans."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _scalar(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_scalar(v) for v in value.list_value.values]
    return None


def _namespace(entry: accesslog_pb2.HTTPAccessLogEntry, name: str) -> dict[str, Any]:
    filter_metadata = entry.common_properties.metadata.filter_metadata
    if name not in filter_metadata:
        return {}
    return {key: _scalar(value) for key, value in filter_metadata[name].fields.items()}


# Response flags that say Envoy itself ended the exchange with the provider (UT, UR, UC, LR, SI,
# UMSDR, UPE): a 5xx then is Envoy's, not a reply of the provider, which may go on billing.
_ENVOY_FAILURE_FLAGS = (
    "upstream_request_timeout",
    "upstream_remote_reset",
    "upstream_connection_termination",
    "local_reset",
    "stream_idle_timeout",
    "upstream_max_stream_duration_reached",
    "upstream_protocol_error",
)


def _envoy_failure(entry: accesslog_pb2.HTTPAccessLogEntry) -> bool:
    flags = entry.common_properties.response_flags
    return any(getattr(flags, name) for name in _ENVOY_FAILURE_FLAGS)


def _ended_at(entry: accesslog_pb2.HTTPAccessLogEntry) -> float | None:
    common = entry.common_properties
    if not common.HasField("start_time"):
        return None
    start = float(common.start_time.ToNanoseconds()) / 1e9
    if common.HasField("time_to_last_downstream_tx_byte"):
        return start + float(common.time_to_last_downstream_tx_byte.ToNanoseconds()) / 1e9
    return start


class _RateLimitedLog:
    """At most one warning per `interval` seconds per reason: a flood of forged entries must not
    become a flood of log lines. Counts what it left out."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warn(self, reason: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -self._interval) < self._interval:
            self._skipped[reason] = self._skipped.get(reason, 0) + 1
            return
        self._last[reason] = now
        skipped = self._skipped.pop(reason, 0)
        suffix = f" ({skipped} more like it since the last warning)" if skipped else ""
        log.warning(message + suffix, *args)


def _drop(read: asyncio.Future[Any]) -> None:
    """Abandon a pending read of the stream, retrieving its outcome. When Envoy closes the
    stream, gRPC ends the iterator (the read finishes with StopAsyncIteration) and cancels the
    handler in the same turn of the loop: unretrieved, asyncio logged that read as an ERROR
    ("Task exception was never retrieved") at every Envoy stop or restart."""
    read.cancel()  # a no-op when it already finished
    read.add_done_callback(lambda f: None if f.cancelled() else f.exception())


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        prices: PriceTable,
        settler: Settler,
        signer: ReservationSigner,
        flush_seconds: float = 0.2,
    ) -> None:
        self._prices = prices
        self._settler = settler
        self._signer = signer
        self._warnings = _RateLimitedLog()
        self._flush_seconds = flush_seconds
        self._closing = asyncio.Event()

    def close_streams(self) -> None:
        """Ask every open stream to end after its next delivered flush (module docstring)."""
        self._closing.set()

    def handle_entry(self, entry: accesslog_pb2.HTTPAccessLogEntry) -> None:
        authz = _namespace(entry, AUTHZ_NAMESPACE)
        usage = _namespace(entry, USAGE_NAMESPACE)
        verdict = None
        if authz.get(AUTHZ_RESERVATION_ID):
            # The reservation header is the Check's own only where it reserved (it overwrites
            # any client copy); compare it then, and only when Envoy logged it.
            recorded = (
                entry.request.request_headers.get(RESERVATION_HEADER)
                if authz.get(AUTHZ_WALLET)
                else None
            )
            verdict = self._signer.verify(authz, recorded)
            if not verdict.ok:
                assert verdict.reason is not None
                m.ACCESS_LOG_REJECTED.labels(verdict.reason).inc()
                # Never the ids, the signature or the metadata: the reason and the key id only.
                self._warnings.warn(
                    verdict.reason,
                    "refused an access-log entry that names a reservation (%s, key id %r): "
                    "nothing settled or released; only the gateway's entries of this service's "
                    "signed reservations are believed",
                    verdict.reason,
                    str(authz.get("key_id", ""))[:16],
                )
                return
        code = entry.response.response_code.value
        # The whole request went upstream: from then on the provider may bill for it.
        reached = entry.common_properties.HasField("time_to_last_upstream_tx_byte")
        item = settlement_for(
            authz,
            usage,
            code,
            self._prices,
            upstream_reached=reached,
            envoy_failure=_envoy_failure(entry),
        )
        if item is None:
            m.ACCESS_LOG_ENTRIES.labels("ignored").inc()
            return
        if (
            isinstance(item, SettleRequest)
            and verdict is not None
            and verdict.estimate_micros > 0
            and item.cost > verdict.estimate_micros
        ):
            # Charged all the same (the provider billed it), but the reservation was meant to
            # be an upper bound: a pricing gap, or usage the gateway did not report itself.
            m.SETTLE_BOUND_VIOLATIONS.inc()
            self._warnings.warn(
                "bound_violation",
                "settling a reservation above its signed estimate: cost %d > estimate %d "
                "micros (model %r); charged in full",
                item.cost,
                verdict.estimate_micros,
                item.model[:64],
            )
        m.ACCESS_LOG_ENTRIES.labels(type(item).__name__.lower()).inc()
        ended = _ended_at(entry)
        charge = None
        if isinstance(item, SettleRequest) and verdict is not None and verdict.owners_signed:
            charge = journaled_charge(
                authz,
                item,
                admitted_ms=self._signer.admitted_ms(authz),
                open_until_ms=self._signer.open_until_ms(authz),
                ended_ms=int(ended * 1000) if ended is not None else 0,
            )
        self._settler.submit(item, ended, charge)

    async def StreamAccessLogs(
        self,
        request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> als_pb2.StreamAccessLogsResponse:
        messages = aiter(request_iterator)
        read: asyncio.Future[als_pb2.StreamAccessLogsMessage] | None = None
        closing: asyncio.Task[bool] | None = None
        try:
            while True:
                read = asyncio.ensure_future(anext(messages))
                if not self._closing.is_set():
                    closing = asyncio.ensure_future(self._closing.wait())
                    await asyncio.wait({read, closing}, return_when=asyncio.FIRST_COMPLETED)
                    closing.cancel()
                if not read.done():
                    # Closing while idle: take the next flush (or give up after 3 intervals).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(read), 3 * self._flush_seconds)
                    if not read.done():
                        break
                try:
                    message = read.result()
                except StopAsyncIteration:
                    break
                read = None
                self._handle_message(message)
                if self._closing.is_set():
                    m.ACCESS_LOG_ENTRIES.labels("stream_closed_after_flush").inc()
                    break  # just after a flush: Envoy has nothing in flight on this stream
        finally:
            if read is not None:
                _drop(read)
            if closing is not None:
                closing.cancel()
        return als_pb2.StreamAccessLogsResponse()

    def _handle_message(self, message: als_pb2.StreamAccessLogsMessage) -> None:
        for entry in message.http_logs.log_entry:
            try:
                self.handle_entry(entry)
            except Exception:  # one bad entry must not end the stream for the others
                log.exception("could not reconcile an access-log entry")
                m.ACCESS_LOG_ENTRIES.labels("error").inc()
