"""A test-only gRPC server for Envoy end-to-end tests: a scriptable ext_authz Check and an ALS
sink that captures every access-log entry. (The real servicers live in keeptrusts_authz.gateway.)

Check behaviour (driven by request headers, so each test controls its own request):
- default: OK; sets `x-keeptrusts-provider` (anthropic for */messages, else openai),
  `x-keeptrusts-reservation: r_<x-test-id or random>`, the provider credential (`authorization:
  Bearer sk-openai-provider` / `x-api-key: sk-ant-provider`), removes the caller's key header
  that the provider does not use, and returns dynamic metadata (reservation_id, team, ...).
- `x-stub-deny: <status>`: denied with that status and a JSON body.
- `x-stub-no-provider: 1`: OK without the provider header (-> Envoy's 404 route).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent import futures
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2, status_pb2

from keeptrusts_authz.envoy_contract import PROVIDER_HEADER, RESERVATION_HEADER, TEAM_HEADER

PROVIDER_KEYS = {"openai": "Bearer sk-openai-provider", "anthropic": "sk-ant-provider"}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


class StubAuthz(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(self) -> None:
        self.checks: list[external_auth_pb2.CheckRequest] = []
        self._lock = threading.Lock()

    def Check(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.checks.append(request)
        http = request.attributes.request.http
        headers = dict(http.headers)
        deny = headers.get("x-stub-deny")
        if deny:
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
                denied_response=external_auth_pb2.DeniedHttpResponse(
                    status=http_status_pb2.HttpStatus(code=int(deny)),
                    headers=[_header("content-type", "application/json")],
                    body='{"error":{"type":"denied"}}',
                ),
            )
        reservation = "r_" + (headers.get("x-test-id") or uuid.uuid4().hex[:24])
        path = http.path.split("?", 1)[0]
        provider = "anthropic" if path.endswith("/messages") else "openai"
        ok = external_auth_pb2.OkHttpResponse()
        if not headers.get("x-stub-no-provider"):
            ok.headers.append(_header(PROVIDER_HEADER, provider))
        ok.headers.append(_header(RESERVATION_HEADER, reservation))
        ok.headers.append(_header(TEAM_HEADER, "team_test"))
        if provider == "openai":
            ok.headers.append(_header("authorization", PROVIDER_KEYS["openai"]))
            ok.headers_to_remove.append("x-api-key")
        else:
            ok.headers.append(_header("x-api-key", PROVIDER_KEYS["anthropic"]))
            ok.headers_to_remove.append("authorization")
        md = struct_pb2.Struct()
        md.update(
            {
                "reservation_id": reservation,
                "team": "team_test",
                "group": "engineering",
                "wallet": "team:team_test",
                "estimate_micros": 12345,
                "body_bytes": len(http.raw_body) or len(http.body),
            }
        )
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK), ok_response=ok, dynamic_metadata=md
        )


class StubAls(als_pb2_grpc.AccessLogServiceServicer):
    def __init__(self) -> None:
        self.entries: list[Any] = []
        self.identifiers: list[Any] = []
        self._cond = threading.Condition()

    def StreamAccessLogs(self, request_iterator: Any, context: Any) -> Any:
        for msg in request_iterator:
            with self._cond:
                if msg.HasField("identifier"):
                    self.identifiers.append(msg.identifier)
                self.entries.extend(msg.http_logs.log_entry)
                self._cond.notify_all()
        return als_pb2.StreamAccessLogsResponse()

    def wait_for(self, reservation: str, timeout: float = 10.0) -> Any:
        """The entry whose Check metadata names `reservation` (the x-keeptrusts-reservation
        header itself is removed before the request goes upstream, so the log may not show it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.entries:
                    authz = e.common_properties.metadata.filter_metadata.get(
                        "envoy.filters.http.ext_authz"
                    )
                    if authz is not None and authz.fields["reservation_id"].string_value == (
                        reservation
                    ):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no access-log entry for {reservation}")
                self._cond.wait(left)

    def wait_for_path(self, path: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.entries:
                    if e.request.path == path:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no access-log entry for path {path}")
                self._cond.wait(left)


def filter_metadata(entry: Any) -> dict[str, dict[str, Any]]:
    """common_properties.metadata.filter_metadata as plain dicts."""
    fm = entry.common_properties.metadata.filter_metadata
    return {ns: json_format.MessageToDict(fm[ns]) for ns in fm}


class StubServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.authz = StubAuthz()
        self.als = StubAls()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(self.authz, self._server)
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self.als, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{port}")

    def __enter__(self) -> StubServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)
