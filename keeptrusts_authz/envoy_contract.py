"""The contract between the authz service and the Envoy gateway: the names both sides agree on.

The renderer (`envoy_config`), the Lua usage filter template (`envoy_config/lua/usage_filter.lua`,
whose `@@NAME@@` placeholders are filled from `LUA_TEMPLATE_VALUES`) and the service (admission,
ext_authz and access-log servicers, reconciliation) all read these names from here, so a rename
is one edit and the rendered config cannot drift from the code that reads it.

- The Check (OK response) sets `PROVIDER_HEADER: <provider name>`; the routes select the provider
  cluster by it (`clear_route_cache: true` re-matches after the Check).
- The Check sets `RESERVATION_HEADER`, which the access log records as an additional request
  header; its dynamic metadata (keys `AUTHZ_*`) reaches the access-log entry under
  `AUTHZ_NAMESPACE`.
- The Lua filter writes the usage the provider reported under `USAGE_NAMESPACE` (keys `USAGE_*`).
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- Envoy filters
EXT_AUTHZ_FILTER: Final = "envoy.filters.http.ext_authz"
LUA_FILTER: Final = "envoy.filters.http.lua"
ROUTER_FILTER: Final = "envoy.filters.http.router"

# --------------------------------------------------------------------------- clusters and logs
AUTHZ_CLUSTER: Final = "keeptrusts_authz"
# The same replicas, used only by the access loggers when each entry goes to two replicas: its
# round robin then gives the two streams of each Envoy worker two different replicas.
AUTHZ_ACCESS_LOG_CLUSTER: Final = "keeptrusts_authz_access_log"
# The grpc.health.v1 service Envoy's health checks ask about (NOT_SERVING while a replica drains).
AUTHZ_HEALTH_SERVICE: Final = "envoy.service.auth.v3.Authorization"
PROVIDER_CLUSTER_PREFIX: Final = "provider_"
ACCESS_LOG_NAME: Final = "keeptrusts"
ACCESS_LOG_COPY_NAME: Final = "keeptrusts-copy"  # the second logger (a distinct stream)


def provider_cluster_name(provider_name: str) -> str:
    """The Envoy cluster that routes to one configured provider."""
    return f"{PROVIDER_CLUSTER_PREFIX}{provider_name}"


# --------------------------------------------------------------------------- headers
PROVIDER_HEADER: Final = "x-keeptrusts-provider"
RESERVATION_HEADER: Final = "x-keeptrusts-reservation"
REASON_HEADER: Final = "x-keeptrusts-reason"
WARNING_HEADER: Final = "x-keeptrusts-budget-warning"
TEAM_HEADER: Final = "x-keeptrusts-team"
TICKET_HEADER: Final = "x-keeptrusts-ticket"
# One id per request, made by Envoy (a header_mutation filter before ext_authz writes
# %UNIQUE_ID% over whatever the client sent), the same on every attempt of a retried Check: the
# reservation id is derived from it, so a Check retried on another replica after a reset finds
# the reservation its first attempt made instead of reserving twice. Removed before upstream.
CHECK_ID_HEADER: Final = "x-keeptrusts-check-id"
CHECK_ID_FILTER: Final = "keeptrusts.check_id"
# The caller's own credential headers: removed before the request goes upstream.
CALLER_KEY_HEADERS: Final = ("authorization", "x-api-key")

# --------------------------------------------------------------------------- dynamic metadata
# The Check's dynamic metadata; Envoy files it under the ext_authz filter's name.
AUTHZ_NAMESPACE: Final = EXT_AUTHZ_FILTER
AUTHZ_RESERVATION_ID: Final = "reservation_id"
AUTHZ_ESTIMATE_MICROS: Final = "estimate_micros"
AUTHZ_WALLET: Final = "wallet"  # the wallet the reservation holds funds in
# The reservation's signature (gateway/signing.py): HMAC-SHA256 under the key named by key id,
# over the org, the reservation id, wallet, estimate, expiry and the cut-off fields below. The
# access-log consumer settles or releases nothing without it.
AUTHZ_ORG: Final = "org"
AUTHZ_EXPIRES_MS: Final = "expires_ms"
AUTHZ_KEY_ID: Final = "key_id"
AUTHZ_SIGNATURE: Final = "signature"
AUTHZ_MODEL: Final = "model"
AUTHZ_PRICED_MODEL: Final = "priced_model"
# Who owns the reservation (the reserve's team, consumer group and user): signed too, so a charge
# recovered from the settlement journal after a store loss books every cent to its owner.
AUTHZ_TEAM: Final = "team"
AUTHZ_GROUP: Final = "consumer_group"
AUTHZ_USER: Final = "user"
# The reservation's input token bound, and whether what a stream shows bounds its output (false
# when the model or the request bills reasoning it never streams): a cut-off stream's charge.
AUTHZ_INPUT_BOUND_TOKENS: Final = "input_bound_tokens"
AUTHZ_OUTPUT_BOUNDED: Final = "output_bounded"
AUTHZ_EXTRA_OUTPUT_TOKENS: Final = "extra_output_tokens"
# The service tier the request asked for (reserved at; settled at when the provider reports none).
AUTHZ_SERVICE_TIER: Final = "service_tier"
# GET /v1/models of a group with allowed_models: the Lua patterns (one a line) the Lua filter
# keeps the response's `data` entries by (gateway/free_endpoints.py).
AUTHZ_MODELS_FILTER: Final = "models_filter"

# The Lua usage filter's dynamic metadata.
USAGE_NAMESPACE: Final = "keeptrusts.usage"
USAGE_FOUND: Final = "usage_found"
USAGE_STREAM: Final = "stream"
USAGE_COMPLETE: Final = "complete"
USAGE_API: Final = "api"
USAGE_MODEL: Final = "model"
USAGE_INPUT_TOKENS: Final = "input_tokens"
USAGE_OUTPUT_TOKENS: Final = "output_tokens"
USAGE_CACHED_TOKENS: Final = "cached_tokens"
USAGE_CACHE_CREATION_TOKENS: Final = "cache_creation_tokens"
# Of the cache writes, those with the one-hour TTL (Anthropic cache_creation breakdown).
USAGE_CACHE_CREATION_HOUR_TOKENS: Final = "cache_creation_1h_tokens"
# The service tier the provider reports it billed at (OpenAI `service_tier`, Anthropic
# `usage.service_tier`); "" when it reports none.
USAGE_SERVICE_TIER: Final = "service_tier"
USAGE_STREAMED_OUTPUT_BYTES: Final = "streamed_output_bytes"
USAGE_STREAMED_CHOICES: Final = "streamed_choices"
# Written by the request side when it added stream_options.include_usage for the client.
USAGE_INJECTED: Final = "usage_injected"

# `@@NAME@@` in the Lua usage filter template -> the value written into the rendered filter.
LUA_TEMPLATE_VALUES: Final[dict[str, str]] = {
    "AUTHZ_NAMESPACE": AUTHZ_NAMESPACE,
    "AUTHZ_MODELS_FILTER": AUTHZ_MODELS_FILTER,
    "USAGE_NAMESPACE": USAGE_NAMESPACE,
    "USAGE_FOUND": USAGE_FOUND,
    "USAGE_STREAM": USAGE_STREAM,
    "USAGE_COMPLETE": USAGE_COMPLETE,
    "USAGE_API": USAGE_API,
    "USAGE_MODEL": USAGE_MODEL,
    "USAGE_INPUT_TOKENS": USAGE_INPUT_TOKENS,
    "USAGE_OUTPUT_TOKENS": USAGE_OUTPUT_TOKENS,
    "USAGE_CACHED_TOKENS": USAGE_CACHED_TOKENS,
    "USAGE_CACHE_CREATION_TOKENS": USAGE_CACHE_CREATION_TOKENS,
    "USAGE_CACHE_CREATION_HOUR_TOKENS": USAGE_CACHE_CREATION_HOUR_TOKENS,
    "USAGE_SERVICE_TIER": USAGE_SERVICE_TIER,
    "USAGE_STREAMED_OUTPUT_BYTES": USAGE_STREAMED_OUTPUT_BYTES,
    "USAGE_STREAMED_CHOICES": USAGE_STREAMED_CHOICES,
    "USAGE_INJECTED": USAGE_INJECTED,
}
