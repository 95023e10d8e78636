"""envoy.service.auth.v3.Authorization: a thin transport over `Admission`. Check never raises."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from keeptrusts_authz.envoy_contract import REASON_HEADER
from keeptrusts_authz.gateway.admission import Admission, Decision
from keeptrusts_authz.metrics import registry as m

log = logging.getLogger(__name__)
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_GRPC_CODE = {401: code_pb2.UNAUTHENTICATED}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE
    )


def to_check_response(d: Decision) -> external_auth_pb2.CheckResponse:
    if d.allowed:
        metadata = struct_pb2.Struct()
        metadata.update(d.metadata)
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=[_header(k, v) for k, v in d.upstream_headers.items()],
                headers_to_remove=list(d.remove_headers),
                response_headers_to_add=[_header(k, v) for k, v in d.response_headers.items()],
            ),
            dynamic_metadata=metadata,
        )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_GRPC_CODE.get(d.status, code_pb2.PERMISSION_DENIED)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=d.status),
            headers=[
                _header("content-type", "application/json"),
                _header(REASON_HEADER, d.reason),
                *(_header(k, v) for k, v in d.response_headers.items()),
            ],
            body=json.dumps(d.body or {}, separators=(",", ":")),
        ),
    )


_INTERNAL = Decision(
    "error",
    "internal_error",
    status=500,
    body={"error": {"type": "internal_error", "message": "the budget check failed unexpectedly"}},
)


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> external_auth_pb2.CheckResponse:
        started = time.perf_counter()
        http = request.attributes.request.http
        try:
            body = http.raw_body or http.body.encode("utf-8")
            decision = await self._admission.decide(http.path, dict(http.headers), body)
        except Exception:  # Check never raises: an unexpected bug is a 500 denial, logged.
            log.exception("Check failed unexpectedly (request id %s)", http.id)
            decision = _INTERNAL
        m.AUTHZ_DECISIONS.labels(decision.decision, decision.reason).inc()
        m.CHECK_LATENCY.observe(
            max(0.0, time.perf_counter() - started - decision.hold_wait_seconds)
        )
        return to_check_response(decision)
