"""Envoy pieces of the wallet admin API (`/v1/wallets/*`), called by `render.py`.

- `transcoder_filter`: envoy.filters.http.grpc_json_transcoder with the descriptor set EMBEDDED
  (`proto_descriptor_bin`, base64 in YAML) so the rendered config stays one self-contained file
  (Kubernetes ConfigMap). It only transcodes requests whose method and path match a
  `google.api.http` rule of keeptrusts.wallet.v1.WalletService; LLM traffic passes through.
  `match_incoming_request_route: true` keeps the route chosen for the REST path (the routes below)
  instead of re-matching on the gRPC path `/keeptrusts.wallet.v1.WalletService/<Method>`.
- `wallet_routes`: one route per REST method (path + HTTP method) to the authz gRPC cluster, with
  ext_authz and the Lua usage filter disabled (admin calls are not LLM traffic; the admin token is
  checked by the service). A known path with the wrong method gets 405, any other `/v1/wallets`
  path 404, both as JSON.
- `grpc_header_strip_filter`: removes `grpc-status`/`grpc-message`/... from HTTP responses. It must
  come BEFORE the transcoder in the filter list (so it runs AFTER it on the response path): the
  transcoder reads grpc-status from those headers/trailers to build the HTTP status.
- `local_reply_config`: Envoy's own replies under /v1/wallets (malformed JSON, unknown query
  parameter, no route) become JSON in the same shape as the converted gRPC errors:
  `{"code": <google.rpc.Code>, "message": "...", "details": []}`.

Errors returned by the service reach the client through `convert_grpc_status: true`: the gRPC
status code becomes the HTTP status (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED
403, NOT_FOUND 404, ALREADY_EXISTS/ABORTED 409, UNAVAILABLE 503) and the body is the
google.rpc.Status as JSON, with a google.rpc.ErrorInfo detail (reason, metadata.field).
"""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources
from typing import Any

from keeptrusts_authz.config.models import Config

Node = dict[str, Any]

_T = "type.googleapis.com/"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
LUA_FILTER = "envoy.filters.http.lua"
WALLET_SERVICE = "keeptrusts.wallet.v1.WalletService"
API_PREFIX = "/v1/wallets"
API_TIMEOUT = "15s"
GRPC_RESPONSE_HEADERS = ("grpc-status", "grpc-message", "grpc-accept-encoding", "grpc-encoding")

# (HTTP method, exact path or None, regex or None, route name): every google.api.http rule of
# wallet.proto. tests/api/test_envoy_routes.py checks this list against the descriptor.
REST_METHODS: tuple[tuple[str, str | None, str | None, str], ...] = (
    ("POST", "/v1/wallets/credit", None, "credit"),
    ("POST", "/v1/wallets/allocate", None, "allocate"),
    ("POST", "/v1/wallets/reclaim", None, "reclaim"),
    ("POST", "/v1/wallets/transfer", None, "transfer"),
    ("GET", "/v1/wallets", None, "list_wallets"),
    ("GET", "/v1/wallets/balance", None, "balance"),
    ("GET", "/v1/wallets/tickets", None, "list_tickets"),
    ("GET", None, r"^/v1/wallets/[^/]+/transactions$", "transactions"),
    ("POST", None, r"^/v1/wallets/tickets/[^/:]+:approve$", "approve_ticket"),
    ("POST", None, r"^/v1/wallets/tickets/[^/:]+:deny$", "deny_ticket"),
)

# HTTP status of an Envoy local reply -> google.rpc.Code for the JSON body.
_LOCAL_REPLY_CODES = ((400, 3), (404, 5), (405, 12), (413, 3), (408, 4), (504, 4), (503, 14))


@cache
def descriptor_set() -> bytes:
    """The FileDescriptorSet of wallet.proto with its imports (package data, `make protos`)."""
    return (resources.files("keeptrusts_authz.api") / "wallet.pb").read_bytes()


def transcoder_filter(cfg: Config) -> Node:
    del cfg  # same filter for every config; kept for symmetry with the other builders
    return {
        "name": TRANSCODER_FILTER,
        "typed_config": {
            "@type": _T
            + "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor_bin": base64.b64encode(descriptor_set()).decode("ascii"),
            "services": [WALLET_SERVICE],
            "match_incoming_request_route": True,
            "convert_grpc_status": True,
            "print_options": {
                "always_print_primitive_fields": True,
                "preserve_proto_field_names": True,
            },
            "request_validation_options": {"reject_unknown_query_parameters": True},
            "max_request_body_size": 64 * 1024,
        },
    }


def grpc_header_strip_filter() -> Node:
    return {
        "name": HEADER_MUTATION_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"response_mutations": [{"remove": h} for h in GRPC_RESPONSE_HEADERS]},
        },
    }


def _admin_filter_overrides() -> Node:
    return {
        EXT_AUTHZ_FILTER: {
            "@type": _T + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "disabled": True,
        },
        LUA_FILTER: {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "disabled": True,
        },
    }


def _path_match(path: str | None, regex: str | None) -> Node:
    if path is not None:
        return {"path": path}
    assert regex is not None
    return {"safe_regex": {"regex": regex}}


def _direct(name: str, match: Node, status: int, message: str) -> Node:
    # The body is plain text on purpose: local_reply_config wraps it into the JSON error shape.
    return {
        "name": name,
        "match": match,
        "direct_response": {"status": status, "body": {"inline_string": message}},
        "typed_per_filter_config": _admin_filter_overrides(),
    }


def wallet_routes(cfg: Config, cluster: str) -> list[Node]:
    """Routes for the wallet API; they must come before any catch-all route."""
    del cfg
    routes: list[Node] = []
    for method, path, regex, name in REST_METHODS:
        match = _path_match(path, regex)
        match["headers"] = [{"name": ":method", "string_match": {"exact": method}}]
        routes.append(
            {
                "name": f"wallet_api_{name}",
                "match": match,
                "route": {"cluster": cluster, "timeout": API_TIMEOUT},
                "typed_per_filter_config": _admin_filter_overrides(),
            }
        )
    for method, path, regex, name in REST_METHODS:
        routes.append(
            _direct(
                f"wallet_api_{name}_method",
                _path_match(path, regex),
                405,
                f"method not allowed: use {method}",
            )
        )
    routes.append(
        _direct(
            "wallet_api_not_found",
            {"path_separated_prefix": API_PREFIX},
            404,
            "no wallet API route for this path",
        )
    )
    return routes


def local_reply_config() -> Node:
    """JSON bodies for Envoy's own replies on /v1/wallets paths (other paths are untouched)."""
    # Body errors happen after the transcoder rewrote :path to the gRPC method: match both.
    on_api: Node = {
        "or_filter": {
            "filters": [
                {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": p}}}}
                for p in (API_PREFIX, f"/{WALLET_SERVICE}/")
            ]
        }
    }

    def mapper(status: int | None, code: int) -> Node:
        filters: list[Node] = [on_api]
        if status is not None:
            filters.append(
                {
                    "status_code_filter": {
                        "comparison": {
                            "op": "EQ",
                            "value": {"default_value": status, "runtime_key": "kt_unused"},
                        }
                    }
                }
            )
        return {
            "filter": {"and_filter": {"filters": filters}} if len(filters) > 1 else on_api,
            "body_format_override": {
                "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []}
            },
        }

    mappers = [mapper(status, code) for status, code in _LOCAL_REPLY_CODES]
    mappers.append(mapper(None, 13))
    return {"mappers": mappers}


__all__ = [
    "API_PREFIX",
    "REST_METHODS",
    "WALLET_SERVICE",
    "descriptor_set",
    "grpc_header_strip_filter",
    "local_reply_config",
    "transcoder_filter",
    "wallet_routes",
]
