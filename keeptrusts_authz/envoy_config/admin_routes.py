"""Envoy pieces of the admin API (`/v1/wallets/*`, `/v1/reports/*`), called by `render.py`.

- `transcoder_filter`: envoy.filters.http.grpc_json_transcoder with the descriptor set EMBEDDED
  (`proto_descriptor_bin`, base64 in YAML) so the rendered config stays one self-contained file
  (Kubernetes ConfigMap). It only transcodes requests whose method and path match a
  `google.api.http` rule of keeptrusts.wallet.v1.WalletService; LLM traffic passes through.
  `match_incoming_request_route: true` keeps the route chosen for the REST path (the routes below)
  instead of re-matching on the gRPC path `/keeptrusts.wallet.v1.WalletService/<Method>`.
  `GET /v1/reports/chargeback` returns a google.api.HttpBody: the transcoder answers with the
  report's bytes and its own content type (text/csv, application/json, text/html).
- `wallet_routes`: one route per REST method (path + HTTP method) to the authz gRPC cluster, with
  ext_authz and the Lua usage filter disabled (admin calls are not LLM traffic; the admin token is
  checked by the service). A known path with the wrong method gets 405, any other `/v1/wallets`
  or `/v1/reports` path 404, both as JSON.
- `grpc_header_strip_filter`: removes `grpc-status`/`grpc-message`/... from HTTP responses. It must
  come BEFORE the transcoder in the filter list (so it runs AFTER it on the response path): the
  transcoder reads grpc-status from those headers/trailers to build the HTTP status.
- `local_reply_config`: JSON bodies for Envoy's own replies.
  * Admin API paths (malformed JSON, unknown query parameter, no route, body too large): the same
    shape as the converted gRPC errors, `{"code": <google.rpc.Code>, "message": "...",
    "details": []}` (a 413 also gets `x-keeptrusts-reason: request_too_large`).
  * Every other path (LLM traffic): a body over `gateway.max_request_bytes` -> 413
    `{"error": {"type": "request_too_large", ...}}`; the Check failing (authz service down,
    unreachable or timing out: ext_authz `status_on_error`) -> 503
    `{"error": {"type": "authz_unavailable", ...}}`; both with the `x-keeptrusts-reason` header
    like the service's own denials.
  * The service's own denials are local replies too (ext_authz sends the DeniedHttpResponse with
    `sendLocalReply`), and must pass through unchanged (their JSON body, status and reason
    header). Discriminator: the response code details, read with a CEL access-log filter —
    Envoy 1.40 sets `ext_authz_denied` for a Check that answered with a denial and
    `ext_authz_error` when the Check failed (both carry the UAEX response flag, so the flag cannot
    tell them apart; a 413 for the body limit is `request_payload_too_large`). Verified against
    the real Envoy in tests/e2e/test_gateway_e2e.py.

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
from keeptrusts_authz.envoy_contract import EXT_AUTHZ_FILTER, LUA_FILTER, REASON_HEADER

Node = dict[str, Any]

_T = "type.googleapis.com/"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
WALLET_SERVICE = "keeptrusts.wallet.v1.WalletService"
API_PREFIX = "/v1/wallets"
REPORTS_PREFIX = "/v1/reports"
API_PREFIXES = (API_PREFIX, REPORTS_PREFIX)
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
# Response code details Envoy 1.40's ext_authz filter sets on its local replies.
AUTHZ_DENIED_DETAILS = "ext_authz_denied"  # the Check answered with a denial: pass through
AUTHZ_ERROR_DETAILS = "ext_authz_error"  # the Check failed: service down, unreachable, timeout
API_TIMEOUT = "15s"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# A report replays the ledger: give it longer than the wallet calls.
ROUTE_TIMEOUTS = {"chargeback_report": "120s"}
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
    ("POST", None, r"^/v1/wallets/teams/[^/]+/allocate$", "team_allocate"),
    ("POST", None, r"^/v1/wallets/teams/[^/]+/reclaim$", "team_reclaim"),
    ("POST", None, r"^/v1/wallets/teams/[^/]+/topups$", "request_topup"),
    ("GET", "/v1/wallets/topups", None, "list_topups"),
    ("POST", None, r"^/v1/wallets/topups/[^/:]+:approve$", "approve_topup"),
    ("POST", None, r"^/v1/wallets/topups/[^/:]+:deny$", "deny_topup"),
    ("GET", "/v1/reports/chargeback", None, "chargeback_report"),
    ("GET", "/v1/wallets/whoami", None, "whoami"),
    ("GET", "/console", None, "console"),
    ("GET", None, r"^/console/[^/]+$", "console_asset"),
)
CONSOLE_PREFIX = "/console"
# The console's files (served by GetConsoleAsset): no inline script or style, nothing from
# another origin, no framing, no referrer, never cached with a stale API contract.
CONSOLE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

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
            # Reports (google.api.HttpBody) are buffered whole by the transcoder: allow large ones.
            "max_response_body_size": MAX_RESPONSE_BYTES,
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
        route: Node = {
            "name": f"wallet_api_{name}",
            "match": match,
            "route": {"cluster": cluster, "timeout": ROUTE_TIMEOUTS.get(name, API_TIMEOUT)},
            "typed_per_filter_config": _admin_filter_overrides(),
        }
        if name.startswith("console"):
            route["response_headers_to_add"] = [
                {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                for k, v in CONSOLE_HEADERS.items()
            ]
        routes.append(route)
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
    routes.append(
        {
            "name": "wallet_api_console_slash",
            "match": {"path": CONSOLE_PREFIX + "/"},
            "redirect": {"path_redirect": CONSOLE_PREFIX},
            "typed_per_filter_config": _admin_filter_overrides(),
        }
    )
    routes.append(
        _direct(
            "wallet_api_console_not_found",
            {"path_separated_prefix": CONSOLE_PREFIX},
            404,
            "no console file at this path",
        )
    )
    routes.append(
        _direct(
            "wallet_api_reports_not_found",
            {"path_separated_prefix": REPORTS_PREFIX},
            404,
            "no report API route for this path",
        )
    )
    return routes


def _status_is(status: int) -> Node:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": status, "runtime_key": "kt_unused"},
            }
        }
    }


def _cel(expression: str) -> Node:
    return {
        "extension_filter": {
            "name": CEL_FILTER,
            "typed_config": {
                "@type": _T + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expression,
            },
        }
    }


def _reason(reason: str) -> list[Node]:
    return [
        {
            "header": {"key": REASON_HEADER, "value": reason},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]


def _gateway_error(filter_: Node, error_type: str, message: str) -> Node:
    return {
        "filter": filter_,
        "headers_to_add": _reason(error_type),
        "body_format_override": {
            "json_format": {"error": {"type": error_type, "message": message}}
        },
    }


def local_reply_config(cfg: Config) -> Node:
    """JSON bodies for Envoy's own replies (see the module docstring)."""
    # Body errors happen after the transcoder rewrote :path to the gRPC method: match both.
    on_api: Node = {
        "or_filter": {
            "filters": [
                {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": p}}}}
                for p in (*API_PREFIXES, f"/{WALLET_SERVICE}/")
            ]
        }
    }

    def mapper(status: int | None, code: int) -> Node:
        node: Node = {
            "filter": {"and_filter": {"filters": [on_api, _status_is(status)]}}
            if status is not None
            else on_api,
            "body_format_override": {
                "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []}
            },
        }
        if status == 413:
            node["headers_to_add"] = _reason("request_too_large")
        return node

    mappers = [mapper(status, code) for status, code in _LOCAL_REPLY_CODES]
    mappers.append(mapper(None, 13))
    limit = cfg.gateway.max_request_bytes
    mappers.append(
        _gateway_error(
            {
                "and_filter": {
                    "filters": [
                        _status_is(413),
                        _cel(f"response.code_details != '{AUTHZ_DENIED_DETAILS}'"),
                    ]
                }
            },
            "request_too_large",
            f"request body exceeds the gateway limit of {limit} bytes",
        )
    )
    mappers.append(
        _gateway_error(
            _cel(f"response.code_details == '{AUTHZ_ERROR_DETAILS}'"),
            "authz_unavailable",
            "the budget check service is unavailable; the request was not forwarded, retry shortly",
        )
    )
    return {"mappers": mappers}


__all__ = [
    "API_PREFIX",
    "API_PREFIXES",
    "AUTHZ_DENIED_DETAILS",
    "AUTHZ_ERROR_DETAILS",
    "CONSOLE_HEADERS",
    "CONSOLE_PREFIX",
    "REPORTS_PREFIX",
    "REST_METHODS",
    "WALLET_SERVICE",
    "descriptor_set",
    "grpc_header_strip_filter",
    "local_reply_config",
    "transcoder_filter",
    "wallet_routes",
]
