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
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.envoy_contract import EXT_AUTHZ_FILTER, LUA_FILTER, REASON_HEADER

Node = dict[str, Any]

_T = "type.googleapis.com/"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
ADMIN_LUA_FILTER = "keeptrusts.filters.http.admin_api_lua"
ERROR_HEADER = "x-keeptrusts-error"
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


@cache
def descriptor_set() -> bytes:
    """The FileDescriptorSet of wallet.proto with its imports (package data, `make protos`)."""
    return (resources.files("keeptrusts_authz.api") / "wallet.pb").read_bytes()


_INT_TYPES = frozenset(
    (
        descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
        descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    )
)


@cache
def accepted_query_parameters() -> dict[str, dict[str, str]]:
    """Route name -> {query parameter: "int" | "string"}, from the descriptor: the fields of each
    GET method's request message that its path template does not bind."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set())
    (wallet,) = [f for f in fds.file if f.package == WALLET_SERVICE.rpartition(".")[0]]
    messages = {m.name: m for m in wallet.message_type}
    (service,) = [s for s in wallet.service if s.name == WALLET_SERVICE.rpartition(".")[2]]
    out: dict[str, dict[str, str]] = {}
    rules = [
        (method, rule)
        for method in service.method
        for top in [method.options.Extensions[annotations_pb2.http]]
        for rule in [top, *top.additional_bindings]
    ]
    for method, rule in rules:
        verb = rule.WhichOneof("pattern")
        assert verb is not None, method.name
        template = getattr(rule, verb)
        bound = set(re.findall(r"\{([a-z_]+)", template))
        concrete = re.sub(r"\{[a-z_]+\}", "x_1", template)
        (name,) = [
            n
            for v, path, regex, n in REST_METHODS
            if v == verb.upper() and (path == concrete or (regex and re.match(regex, concrete)))
        ]
        request = messages[method.input_type.rpartition(".")[2]]
        # A route with an HTTP body takes everything there (the service validates it strictly):
        # query parameters would fill typed fields it ignores, so it accepts none.
        out[name] = {
            f.name: "int" if f.type in _INT_TYPES else "string"
            for f in request.field
            if f.name not in bound and not rule.body
        }
    return out


def _lua_literal(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


@cache
def admin_lua(route: str) -> str:
    """The admin API Lua filter's code for one route (envoy_config/lua/admin_api.lua)."""
    params = accepted_query_parameters()[route]
    names = sorted(params)
    table = "{" + ", ".join(f"[{_lua_literal(n)}] = {_lua_literal(params[n])}" for n in names) + "}"
    template = (resources.files("keeptrusts_authz.envoy_config") / "lua/admin_api.lua").read_text(
        encoding="utf-8"
    )
    return (
        template.replace(
            "@@ACCEPTED_JSON@@", _lua_literal(json.dumps(names, separators=(",", ":")))
        )
        .replace("@@ACCEPTED_TEXT@@", _lua_literal(", ".join(names)))
        .replace("@@ACCEPTED@@", table)
        .replace("@@REASON_HEADER@@", REASON_HEADER)
    )


def admin_lua_filter() -> Node:
    """Runs on the admin routes only (their per-route code); a no-op everywhere else."""
    return {
        "name": ADMIN_LUA_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": "-- admin API routes only (per route)\n"},
        },
    }


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


def _admin_filter_overrides(route: str | None = None) -> Node:
    overrides: Node = {
        EXT_AUTHZ_FILTER: {
            "@type": _T + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "disabled": True,
        },
        LUA_FILTER: {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "disabled": True,
        },
    }
    if route is not None:
        overrides[ADMIN_LUA_FILTER] = {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "source_code": {"inline_string": admin_lua(route)},
        }
    return overrides


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
            "typed_per_filter_config": _admin_filter_overrides(name),
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


# Envoy's own replies on the admin API: HTTP status -> (error type, message). The message is
# ours, never the transcoder's text (%LOCAL_REPLY_BODY% is used only for the routes' own direct
# responses, whose text this module writes).
_API_LOCAL_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "invalid_input",
        "malformed request: the body must be a JSON object and query parameters must have "
        "their documented types",
    ),
    404: ("not_found", "no such wallet API route"),
    405: ("method_not_allowed", "method not allowed on this wallet API route"),
    408: ("timeout", "the request timed out"),
    413: ("request_too_large", "request body too large for the wallet API"),
    503: ("unavailable", "the wallet API service is unavailable; retry shortly"),
    504: ("timeout", "the wallet API service did not answer in time"),
}
LUA_RESPONSE_DETAILS = "lua_response"  # Envoy's code details of a Lua filter's respond()
DIRECT_RESPONSE_DETAILS = "direct_response"


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

    def api_error(status: int | None, error_type: str, message: str, direct: bool) -> Node:
        filters = [on_api]
        if status is not None:
            filters.append(_status_is(status))
        if direct:
            filters.append(_cel(f"response.code_details == '{DIRECT_RESPONSE_DETAILS}'"))
        node: Node = {
            "filter": {"and_filter": {"filters": filters}} if len(filters) > 1 else on_api,
            "headers_to_add": _reason(error_type),
            "body_format_override": {
                "json_format": {
                    "error": {
                        "type": error_type,
                        "message": "%LOCAL_REPLY_BODY%" if direct else message,
                    }
                }
            },
        }
        return node

    mappers: list[Node] = [
        # The admin Lua filter's refusals already carry the error document: unchanged.
        {
            "filter": {
                "and_filter": {
                    "filters": [on_api, _cel(f"response.code_details == '{LUA_RESPONSE_DETAILS}'")]
                }
            }
        }
    ]
    for status in (404, 405):
        error_type, message = _API_LOCAL_ERRORS[status]
        mappers.append(api_error(status, error_type, message, direct=True))
    for status, (error_type, message) in _API_LOCAL_ERRORS.items():
        mappers.append(api_error(status, error_type, message, direct=False))
    mappers.append(api_error(None, "internal", "internal error", direct=False))
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
