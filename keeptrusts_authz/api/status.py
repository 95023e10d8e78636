"""Domain errors -> gRPC status with a google.rpc.Status detail.

Envoy's transcoder (`convert_grpc_status: true`) turns the code into the HTTP status; the body
the client gets is the `x-keeptrusts-error` trailer, `{"error": {"type", "message", ...}}`
(the admin API Lua filter swaps it in, docs/ENVOY.md). gRPC callers also get the
google.rpc.Status (`grpc-status-details-bin`) with an ErrorInfo detail:
`{"code": 3, "message": "amount: must be greater than zero", "details": [{"@type":
"type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_INPUT", "domain":
"keeptrusts", "metadata": {"field": "amount"}}]}`.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from keeptrusts_authz.envoy_contract import REASON_HEADER
from keeptrusts_authz.errors import Conflict, CurrencyMismatch, KeeptrustsError
from keeptrusts_authz.wallets.views import error_doc

DOMAIN = "keeptrusts"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The HTTP error document for Envoy (envoy_config/lua/admin_api.lua makes it the body).
ERROR_KEY = "x-keeptrusts-error"

# HTTP status of a domain error -> gRPC code (Envoy maps it back to the same HTTP status).
_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def grpc_code(exc: KeeptrustsError) -> grpc.StatusCode:
    if isinstance(exc, Conflict):
        return grpc.StatusCode.ALREADY_EXISTS
    return _BY_HTTP.get(exc.http_status, grpc.StatusCode.INTERNAL)


def _metadata(details: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in details.items():
        if isinstance(value, str | int | float | bool):
            out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def status_proto(exc: KeeptrustsError) -> status_pb2.Status:
    code = grpc_code(exc)
    details = dict(exc.details)
    if isinstance(exc, CurrencyMismatch):
        details.setdefault("field", "currency")
    info = error_details_pb2.ErrorInfo(
        reason=exc.code.upper(), domain=DOMAIN, metadata=_metadata(details)
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(code=code.value[0], message=exc.message, details=[packed])


def error_json(exc: KeeptrustsError) -> str:
    """`{"error": {"type", "message", ...details}}` as compact ASCII JSON (a metadata value)."""
    details = dict(exc.details)
    if isinstance(exc, CurrencyMismatch):
        details.setdefault("field", "currency")
    doc = error_doc(exc.code, exc.message, details)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, default=str)


async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: KeeptrustsError) -> NoReturn:
    status = status_proto(exc)
    context.set_trailing_metadata(
        (
            (STATUS_DETAILS_KEY, status.SerializeToString()),
            (ERROR_KEY, error_json(exc)),
            (REASON_HEADER, exc.code),
        )
    )
    await context.abort(grpc_code(exc), exc.message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


__all__ = ["DOMAIN", "abort", "grpc_code", "status_proto"]
