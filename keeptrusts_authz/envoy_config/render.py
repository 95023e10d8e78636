"""Render the gateway's Envoy bootstrap YAML from a `Config` (`keeptrusts-authz render-envoy`).

The output is self-contained (the Lua filter is inlined) so it can be shipped as a Kubernetes
ConfigMap, and deterministic: the same config renders byte-identical YAML.

Each piece (cluster, route, HTTP filter) is built by a small function; `build_routes` and
`build_http_filters` are the places to extend (e.g. a gRPC-JSON transcoder route for `/v1/wallets`).

The names shared with the authz service (headers, metadata namespaces and keys, cluster names)
live in `keeptrusts_authz.envoy_contract`; the Lua filter template's `@@NAME@@` placeholders are
filled from it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlparse

import yaml

from keeptrusts_authz import envoy_contract
from keeptrusts_authz.config.models import ACCOUNT_SELECTION_HEADERS, Config, Provider
from keeptrusts_authz.envoy_config import admin_routes, jwt
from keeptrusts_authz.envoy_contract import (
    ACCESS_LOG_COPY_NAME,
    ACCESS_LOG_NAME,
    AUTHZ_ACCESS_LOG_CLUSTER,
    AUTHZ_CLUSTER,
    AUTHZ_HEALTH_SERVICE,
    CHECK_ID_FILTER,
    CHECK_ID_HEADER,
    EXT_AUTHZ_FILTER,
    LUA_FILTER,
    LUA_TEMPLATE_VALUES,
    PROVIDER_HEADER,
    RESERVATION_HEADER,
    ROUTER_FILTER,
    USAGE_NAMESPACE,
)

HEALTH_PATH = "/healthz"

_REQUEST_BEGIN = "-- @@REQUEST_BEGIN@@"
_REQUEST_END = "-- @@REQUEST_END@@"
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")

_T = "type.googleapis.com/"
Node = dict[str, Any]


def _duration(seconds: float) -> str:
    """Envoy duration string: 2 -> "2s", 0.2 -> "0.2s", 1.25 -> "1.25s" (ms precision)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _socket_address(host: str, port: int) -> Node:
    return {"socket_address": {"address": host, "port_value": port}}


def _load_assignment(name: str, host: str, port: int) -> Node:
    return _load_assignment_of(name, [(host, port)])


def _load_assignment_of(name: str, addresses: list[tuple[str, int]]) -> Node:
    endpoints = [{"endpoint": {"address": _socket_address(h, p)}} for h, p in addresses]
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}


def _json_body(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- Lua usage filter


@cache
def _lua_source() -> str:
    ref = resources.files("keeptrusts_authz.envoy_config") / "lua" / "usage_filter.lua"
    return ref.read_text(encoding="utf-8")


def _fill_placeholder(match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in LUA_TEMPLATE_VALUES:
        raise KeyError(f"usage_filter.lua: unknown placeholder @@{name}@@")
    return LUA_TEMPLATE_VALUES[name]


def usage_filter_lua(inject_stream_usage: bool = True) -> str:
    """The Lua usage filter's source; without the request step when injection is off."""
    source = _lua_source()
    if not inject_stream_usage:
        start = source.index(_REQUEST_BEGIN)
        end = source.index(_REQUEST_END) + len(_REQUEST_END)
        source = source[:start] + source[end:]
    lines = [
        line.rstrip()
        for line in source.strip().splitlines()
        if line.strip() not in (_REQUEST_BEGIN, _REQUEST_END)
    ]
    return _PLACEHOLDER.sub(_fill_placeholder, "\n".join(lines)) + "\n"


# --------------------------------------------------------------------------- clusters


def provider_cluster_name(provider: Provider) -> str:
    return envoy_contract.provider_cluster_name(provider.name)


# A replica that stops answering (or says NOT_SERVING while it drains) leaves the rotation
# within about one second: two failed health checks 0.5 s apart, or one refused connection.
AUTHZ_HEALTH_INTERVAL_S = 0.5
AUTHZ_HEALTH_TIMEOUT_S = 0.25
AUTHZ_UNHEALTHY_THRESHOLD = 2
AUTHZ_CONNECT_TIMEOUT_S = 0.5


def _authz_health_check() -> Node:
    interval = _duration(AUTHZ_HEALTH_INTERVAL_S)
    return {
        "timeout": _duration(AUTHZ_HEALTH_TIMEOUT_S),
        "interval": interval,
        # The access-log cluster carries only long-lived streams: check it as often as the other.
        "no_traffic_interval": interval,
        "unhealthy_interval": interval,
        "unhealthy_threshold": AUTHZ_UNHEALTHY_THRESHOLD,
        "healthy_threshold": 1,
        "grpc_health_check": {"service_name": AUTHZ_HEALTH_SERVICE},
    }


def _authz_outlier_detection() -> Node:
    # Connection failures (refused, reset) are local-origin errors: one ejects the replica at
    # once instead of after five failed Checks.
    return {
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": 1,
        "enforcing_consecutive_local_origin_failure": 100,
        "consecutive_gateway_failure": 2,
        "enforcing_consecutive_gateway_failure": 100,
        "interval": "1s",
        "base_ejection_time": "5s",
        "max_ejection_percent": 50,
    }


def authz_upstream_tls(cfg: Config) -> Node | None:
    """Envoy's mTLS to the service (`gateway.authz_tls`): its client certificate, the CA of the
    service's certificate and the name that certificate must carry (SAN, and SNI for a DNS
    name). The cluster's health checks use the same transport socket."""
    tls = cfg.gateway.authz_tls
    if tls is None:
        return None
    san_type = "IP_ADDRESS" if _is_ip(tls.server_name) else "DNS"
    context: Node = {
        "@type": _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": tls.cert_file},
                    "private_key": {"filename": tls.key_file},
                }
            ],
            # gRPC over TLS: negotiate HTTP/2 by ALPN (grpc-core insists on it).
            "alpn_protocols": ["h2"],
            "validation_context": {
                "trusted_ca": {"filename": tls.ca_file},
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": tls.server_name}}
                ],
            },
        },
    }
    if san_type == "DNS":
        context["sni"] = tls.server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _authz_address(cfg: Config, name: str) -> Node:
    """Where the authz cluster connects: a Unix socket (sidecar mode: STATIC, one `pipe`
    endpoint) or the TCP endpoints (STRICT_DNS, so a headless Service spreads over pods)."""
    uds = cfg.gateway.authz_uds_path
    if uds is not None:
        endpoint = {"endpoint": {"address": {"pipe": {"path": uds}}}}
        return {
            "type": "STATIC",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        }
    return {
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "dns_refresh_rate": "5s",
        "load_assignment": _load_assignment_of(name, cfg.gateway.authz_addresses()),
    }


def authz_cluster(cfg: Config, name: str = AUTHZ_CLUSTER) -> Node:
    """gRPC (HTTP/2) to the authz replicas, over mTLS or a Unix socket when configured; gRPC
    health checks and outlier detection take a dead or draining replica out of rotation."""
    address = _authz_address(cfg, name)
    load_assignment = address.pop("load_assignment")
    cluster: Node = {
        "name": name,
        **address,
        "connect_timeout": _duration(AUTHZ_CONNECT_TIMEOUT_S),
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                    }
                },
            }
        },
        # Checks that wait for a hold can be many at once: do not let the default
        # circuit breaker (1024 requests) turn them into 503s.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 100000,
                    "max_pending_requests": 100000,
                    "max_requests": 100000,
                    "max_retries": 100000,
                }
            ]
        },
        "health_checks": [_authz_health_check()],
        "outlier_detection": _authz_outlier_detection(),
        "load_assignment": load_assignment,
    }
    if (tls := authz_upstream_tls(cfg)) is not None:
        cluster["transport_socket"] = tls
    return cluster


def _provider_endpoint(provider: Provider) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of the provider URL."""
    url = urlparse(provider.url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, host, port, url.path.rstrip("/")


def upstream_tls(cfg: Config, host: str) -> Node:
    san_type = "IP_ADDRESS" if _is_ip(host) else "DNS"
    context: Node = {
        "@type": _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": cfg.gateway.ca_bundle},
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": host}}
                ],
            }
        },
    }
    if san_type == "DNS":
        context["sni"] = host
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def provider_secret_name(provider: Provider) -> str:
    return f"provider_credential_{provider.name}"


def provider_secrets(cfg: Config) -> list[Node]:
    """Each provider key as a static generic secret that Envoy reads from its own file."""
    return [
        {
            "name": provider_secret_name(p),
            "generic_secret": {"secret": {"filename": p.credential_file}},
        }
        for p in cfg.providers
        if p.credential_file
    ]


def _credential_header(provider: Provider) -> tuple[str, str]:
    """(header, value prefix) the provider expects its key in."""
    if provider.kind == "anthropic":
        return "x-api-key", ""
    return "authorization", "Bearer "


def credential_injector_filter(provider: Provider) -> Node:
    """Upstream filter of the provider cluster: the provider key goes on every request sent to
    that provider (overwriting whatever the caller sent), and only there."""
    header, prefix = _credential_header(provider)
    generic: Node = {
        "@type": _T + "envoy.extensions.http.injected_credentials.generic.v3.Generic",
        "credential": {"name": provider_secret_name(provider)},
        "header": header,
    }
    if prefix:
        generic["header_value_prefix"] = prefix
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.credential_injector.v3.CredentialInjector",
            "overwrite": True,
            "allow_request_without_credential": False,
            "credential": {
                "name": "envoy.http.injected_credentials.generic",
                "typed_config": generic,
            },
        },
    }


# The gateway's own headers (provider, team, user, ticket, reservation, ...): never upstream.
KEEPTRUSTS_HEADER_PREFIX = "x-keeptrusts-"


def provider_header_filter(cfg: Config, provider: Provider) -> Node:
    """Upstream filter of the provider cluster: what of the request's headers reaches the
    provider. Removed: every `x-keeptrusts-*` header, the configured user headers (the Check
    read them), the account-selection headers; then the provider's fixed `headers` are set
    (overwriting whatever the client sent under those names)."""
    names = sorted(
        {
            *ACCOUNT_SELECTION_HEADERS,
            cfg.enforcement.user_header.lower(),
            *(cfg.user_header_for(g) for g in cfg.consumer_groups),
            *provider.headers,
        }
    )
    mutations: list[Node] = [
        {"remove_on_match": {"key_matcher": {"prefix": KEEPTRUSTS_HEADER_PREFIX}}},
        *({"remove": name} for name in names if not name.startswith(KEEPTRUSTS_HEADER_PREFIX)),
        *(
            {
                "append": {
                    "header": {"key": name, "value": value},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            }
            for name, value in sorted(provider.headers.items())
        ),
    ]
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": mutations},
        },
    }


# The allow-list: only these client headers reach a provider (pseudo-headers such as :authority
# and :path are Envoy's and always kept). Transport essentials for every provider, then each
# kind's API headers; a trailing "*" is a prefix. Both SDKs are Stainless-generated and send
# x-stainless-* telemetry.
ESSENTIAL_REQUEST_HEADERS = (
    "accept",
    "accept-encoding",
    "content-length",
    "content-type",
    "host",
    "user-agent",
    "x-stainless-*",
)
PROVIDER_REQUEST_HEADERS: dict[str, tuple[str, ...]] = {
    "openai": ("openai-beta", "idempotency-key", "x-request-id"),
    "anthropic": ("anthropic-*",),
}
HEADER_ALLOW_LIST_FILTER = "keeptrusts.provider_header_allow_list"


def allowed_request_headers(provider: Provider) -> tuple[list[str], list[str]]:
    """(exact names, prefixes) of the client headers that may reach `provider`."""
    entries = {
        *ESSENTIAL_REQUEST_HEADERS,
        *PROVIDER_REQUEST_HEADERS.get(provider.kind, ()),
        _credential_header(provider)[0],
        *provider.headers,
        *provider.allowed_request_headers,
    }
    exact = sorted(e for e in entries if not e.endswith("*"))
    prefixes = sorted(e[:-1] for e in entries if e.endswith("*"))
    return exact, prefixes


def _lua_strings(values: list[str]) -> str:
    # Validated header names ([a-z0-9-]): json.dumps yields a valid Lua string literal.
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


def header_allow_list_filter(cfg: Config, provider: Provider) -> Node:
    """Upstream filter of the provider cluster (so after ext_authz and every route decision, on
    the request that actually goes to this provider): every header that is not a pseudo-header
    and not on the provider's allow-list is removed. The gateway's own headers, the user
    headers and the account-selection headers are removed even if a pattern would cover them
    (the provider's fixed `headers` are set again by the header_mutation filter that follows)."""
    exact, prefixes = allowed_request_headers(provider)
    denied = sorted(
        {
            *ACCOUNT_SELECTION_HEADERS,
            cfg.enforcement.user_header.lower(),
            *(cfg.user_header_for(g) for g in cfg.consumer_groups),
        }
        - set(provider.headers)
    )
    own = KEEPTRUSTS_HEADER_PREFIX
    source = f"""local exact = {{}}
for _, name in ipairs({_lua_strings(exact)}) do exact[name] = true end
local prefixes = {_lua_strings(prefixes)}
local denied = {{}}
for _, name in ipairs({_lua_strings(denied)}) do denied[name] = true end

local function allowed(name)
  if string.sub(name, 1, 1) == ":" then return true end
  if denied[name] or string.sub(name, 1, {len(own)}) == "{own}" then return false end
  if exact[name] then return true end
  for _, prefix in ipairs(prefixes) do
    if string.sub(name, 1, #prefix) == prefix then return true end
  end
  return false
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local drop = {{}}
  for name, _ in pairs(headers) do
    local low = string.lower(name)
    if not allowed(low) then drop[#drop + 1] = low end
  end
  for _, name in ipairs(drop) do headers:remove(name) end
end
"""
    return {
        "name": HEADER_ALLOW_LIST_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": source},
        },
    }


def provider_cluster(cfg: Config, provider: Provider) -> Node:
    scheme, host, port, _ = _provider_endpoint(provider)
    name = provider_cluster_name(provider)
    cluster: Node = {
        "name": name,
        "type": "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": _load_assignment(name, host, port),
    }
    upstream_filters = [
        header_allow_list_filter(cfg, provider),
        provider_header_filter(cfg, provider),
    ]
    if provider.credential_file:
        upstream_filters.append(credential_injector_filter(provider))
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {}},
            "http_filters": [
                *upstream_filters,
                {
                    "name": "envoy.filters.http.upstream_codec",
                    "typed_config": {
                        "@type": _T
                        + "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
                    },
                },
            ],
        }
    }
    if scheme == "https":
        cluster["transport_socket"] = upstream_tls(cfg, host)
    return cluster


def build_clusters(cfg: Config) -> list[Node]:
    authz = [authz_cluster(cfg)]
    if cfg.gateway.duplicates_access_log():
        authz.append(authz_cluster(cfg, AUTHZ_ACCESS_LOG_CLUSTER))
    providers = [provider_cluster(cfg, p) for p in cfg.providers]
    return authz + providers + jwt.jwks_clusters(cfg, lambda host: upstream_tls(cfg, host))


# --------------------------------------------------------------------------- routes


def _disable_filters() -> Node:
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


def _json_direct_response(status: int, body: object) -> Node:
    return {
        "direct_response": {"status": status, "body": {"inline_string": _json_body(body)}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def health_route() -> Node:
    """Liveness of the gateway itself, answered by Envoy without a Check."""
    route: Node = {"name": "healthz", "match": {"path": HEALTH_PATH}}
    route.update(_json_direct_response(200, {"status": "ok"}))
    route["typed_per_filter_config"] = _disable_filters()
    return route


def provider_route(provider: Provider) -> Node:
    """Requests the Check assigned to `provider` (header set by the authz service)."""
    scheme, host, port, prefix = _provider_endpoint(provider)
    default_port = 443 if scheme == "https" else 80
    action: Node = {
        "cluster": provider_cluster_name(provider),
        "timeout": _duration(provider.timeout_seconds),
        "host_rewrite_literal": host if port == default_port else f"{host}:{port}",
    }
    if prefix:
        action["prefix_rewrite"] = prefix + "/"
    return {
        "name": f"provider_{provider.name}",
        "match": {
            "prefix": "/",
            "headers": [{"name": PROVIDER_HEADER, "string_match": {"exact": provider.name}}],
        },
        "route": action,
        # The Lua filter reads response bodies: ask providers for identity encoding.
        "request_headers_to_remove": ["accept-encoding"],
    }


def not_found_route() -> Node:
    """Anything the Check did not assign to a provider (a denied request never gets here)."""
    route: Node = {"name": "no_provider", "match": {"prefix": "/"}}
    route.update(
        _json_direct_response(
            404,
            {"error": {"type": "not_found", "message": "no provider route for this request"}},
        )
    )
    return route


def build_routes(cfg: Config) -> list[Node]:
    return [
        health_route(),
        *admin_routes.wallet_routes(cfg, AUTHZ_CLUSTER),  # /v1/wallets: gRPC-JSON transcoding
        *(provider_route(p) for p in cfg.providers),
        not_found_route(),
    ]


def build_route_config(cfg: Config) -> Node:
    return {
        "name": "keeptrusts",
        "virtual_hosts": [{"name": "gateway", "domains": ["*"], "routes": build_routes(cfg)}],
    }


# --------------------------------------------------------------------------- HTTP filters


def check_timeout_seconds(cfg: Config) -> float:
    """The Check deadline; a Check that may wait (a hold's ticket, a block's wait for reserved
    money) gets that wait on top."""
    return cfg.gateway.check_timeout_seconds + cfg.check_wait_seconds()


def _check_retry_policy() -> Node:
    """A Check that never reached a replica's handler (connection refused, stream refused, a
    draining server's UNAVAILABLE) or whose replica went away under it (a reset: killed, or its
    connection broke) is retried at once on another replica. The retry carries the same
    CHECK_ID_HEADER, so it derives the same reservation id: a first attempt that did reserve is
    found again (reserve.lua `duplicate`, adopted by the retry) instead of reserving twice and
    leaving one open to expire at its estimate."""
    return {
        "retry_on": "connect-failure,refused-stream,unavailable,reset",
        "num_retries": 2,
        # No retry_back_off: with one set, Envoy 1.40's gRPC client timed out Checks under load
        # (upstream_rq_504 + tx_reset on ~20 % of them at saturation, bench/gateway_bench.py).
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": _T
                    + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _authz_grpc_service(
    timeout: float | None = None, *, cluster: str = AUTHZ_CLUSTER, retry: bool = False
) -> Node:
    service: Node = {"envoy_grpc": {"cluster_name": cluster}}
    if timeout is not None:
        service["timeout"] = _duration(timeout)
    if retry:
        service["retry_policy"] = _check_retry_policy()
    return service


def ext_authz_filter(cfg: Config) -> Node:
    return {
        "name": EXT_AUTHZ_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": _authz_grpc_service(check_timeout_seconds(cfg), retry=True),
            "with_request_body": {
                "max_request_bytes": cfg.gateway.max_request_bytes,
                "allow_partial_message": False,
                "pack_as_bytes": True,
            },
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "clear_route_cache": True,
            "include_peer_certificate": False,
        },
    }


def lua_filter(cfg: Config) -> Node:
    return {
        "name": LUA_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {
                "inline_string": usage_filter_lua(cfg.gateway.inject_stream_usage)
            },
        },
    }


def router_filter() -> Node:
    return {
        "name": ROUTER_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.router.v3.Router",
            # Providers need no x-envoy-* request headers (timeouts, attempt counts).
            "suppress_envoy_headers": True,
        },
    }


def check_id_filter() -> Node:
    """Writes an Envoy-made id (%UNIQUE_ID%, a UUID4) into CHECK_ID_HEADER of every request,
    over any value the client sent: the reservation id derives from it, so a client must never
    choose it (two requests of one id would share one reservation)."""
    return {
        "name": CHECK_ID_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {
                        "append": {
                            "header": {"key": CHECK_ID_HEADER, "value": "%UNIQUE_ID%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    }
                ]
            },
        },
    }


def build_http_filters(cfg: Config) -> list[Node]:
    return [
        check_id_filter(),
        # User tokens (user_source: jwt): client copies of the claim headers removed, then
        # jwt_authn verifies and writes them (envoy_config/jwt.py); nothing without jwt_issuers.
        *jwt.jwt_filters(cfg),
        ext_authz_filter(cfg),
        lua_filter(cfg),
        # /v1/wallets: the strip filter precedes the transcoder so it runs after it on responses.
        admin_routes.grpc_header_strip_filter(),
        # Before the transcoder: checks query parameters first, rewrites its error bodies after.
        admin_routes.admin_lua_filter(),
        admin_routes.transcoder_filter(cfg),
        router_filter(),
    ]


# --------------------------------------------------------------------------- listener


ACCESS_LOG_BUFFER_BYTES = 4 * 1024 * 1024


def grpc_access_log(cfg: Config, log_name: str = ACCESS_LOG_NAME) -> Node:
    """Every request's entry, with all dynamic metadata, streamed to the service (settle)."""
    cluster = AUTHZ_ACCESS_LOG_CLUSTER if cfg.gateway.duplicates_access_log() else AUTHZ_CLUSTER
    return {
        "name": "envoy.access_loggers.http_grpc",
        "typed_config": {
            "@type": _T + "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {
                "log_name": log_name,
                "transport_api_version": "V3",
                "grpc_service": _authz_grpc_service(cluster=cluster),
                "buffer_flush_interval": _duration(cfg.gateway.access_log_flush_ms / 1000),
                # Flush by time, not by size (Envoy's default 16 KiB flushes every few dozen
                # entries under load): a restarting service ends its streams right after a
                # flush, when nothing is in flight (gateway/accesslog_servicer.py).
                "buffer_size_bytes": ACCESS_LOG_BUFFER_BYTES,
            },
            "additional_request_headers_to_log": [RESERVATION_HEADER],
        },
    }


def access_logs(cfg: Config) -> list[Node]:
    """One logger, or two (distinct streams, so distinct replicas) when the entry must survive the
    loss of a replica: the replica that gets the second copy finds the reservation settled."""
    logs = [grpc_access_log(cfg)]
    if cfg.gateway.duplicates_access_log():
        logs.append(grpc_access_log(cfg, ACCESS_LOG_COPY_NAME))
    return logs


def http_connection_manager(cfg: Config) -> Node:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _T
            + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "keeptrusts",
            "codec_type": "AUTO",
            "normalize_path": True,
            "merge_slashes": True,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
            "route_config": build_route_config(cfg),
            "http_filters": build_http_filters(cfg),
            "access_log": access_logs(cfg),
            "local_reply_config": admin_routes.local_reply_config(cfg),
        },
    }


def build_listener(cfg: Config) -> Node:
    return {
        "name": "gateway",
        "address": _socket_address(cfg.gateway.listen_host, cfg.gateway.listen_port),
        # Bodies the Check must see in full are buffered up to max_request_bytes (beyond: 413).
        "per_connection_buffer_limit_bytes": max(cfg.gateway.max_request_bytes, 1024 * 1024),
        "filter_chains": [{"filters": [http_connection_manager(cfg)]}],
    }


def build_bootstrap(cfg: Config) -> Node:
    gw = cfg.gateway
    return {
        "node": {"id": "keeptrusts-gateway", "cluster": "keeptrusts"},
        "admin": {"address": _socket_address(gw.admin_host, gw.admin_port)},
        "static_resources": {
            "listeners": [build_listener(cfg)],
            "clusters": build_clusters(cfg),
            **({"secrets": secrets} if (secrets := provider_secrets(cfg)) else {}),
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _T
                        + "envoy.extensions.resource_monitors.downstream_connections.v3."
                        + "DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 50000,
                    },
                }
            ]
        },
    }


# --------------------------------------------------------------------------- YAML


def _header(cfg: Config) -> str:
    inject = cfg.gateway.inject_stream_usage
    lines = [
        "GENERATED by `keeptrusts-authz render-envoy` from the keeptrusts config. Do not edit:",
        "change the config and re-render (`make render-envoy`).",
        "",
        f"Filters, in order: {EXT_AUTHZ_FILTER} (Check with the request body, fail closed: 503;",
        f"body over max_request_bytes: 413), {LUA_FILTER} (usage -> dynamic metadata namespace",
        f"{USAGE_NAMESPACE}), router. The Check sets `{PROVIDER_HEADER}`, which selects the",
        "provider route; requests without it get a 404 JSON response.",
        f"Access log: envoy.access_loggers.http_grpc (log_name {ACCESS_LOG_NAME}) to the",
        f"{AUTHZ_CLUSTER} cluster, with all dynamic metadata (settles the reservation).",
        "Envoy's own replies are JSON: a body over max_request_bytes -> 413 request_too_large, a",
        "failed Check (service down / timeout) -> 503 authz_unavailable, both with",
        "x-keeptrusts-reason; the service's own denials pass through unchanged.",
        "",
        "OpenAI streams whose request lacks stream_options.include_usage:",
        *(
            [
                "the Lua request step ADDS include_usage (gateway.inject_stream_usage: true), so",
                "the real usage arrives in a final chunk (empty `choices`) and the reservation",
                "settles at the real cost. An explicit include_usage is left as the client sent",
                "it.",
            ]
            if inject
            else [
                "NOT injected (gateway.inject_stream_usage: false): such streams report no usage",
                "and settle at the reserved estimate.",
            ]
        ),
    ]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


def render_envoy_yaml(cfg: Config) -> str:
    """The Envoy bootstrap for `cfg` as YAML text (deterministic, self-contained)."""
    body = yaml.dump(
        build_bootstrap(cfg),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
        allow_unicode=False,
    )
    return _header(cfg) + body
