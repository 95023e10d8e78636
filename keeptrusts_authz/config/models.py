"""The configuration model tree (`keeptrusts.yaml`), DESIGN section 5.

Every model is strict: unknown keys are rejected and reported with their path. Secrets (consumer
API keys) are held as SecretStr and reduced to sha256 digests by `ConsumerGroup.key_digest`.
"""

from __future__ import annotations

import hashlib
import os
import re
from decimal import Decimal
from ipaddress import ip_address
from typing import Annotated, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Scope = Literal["user", "team", "org"]
Policy = Literal["block", "warn", "hold"]
ProviderKind = Literal["openai", "anthropic"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
IdStr = Annotated[str, Field(pattern=_ID)]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Organization(StrictModel):
    id: IdStr = "default"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


def _default_cascade() -> list[Scope]:
    return ["user", "team"]


# What a request with inputs the gateway cannot bound gets: refused (400 naming the feature), or
# reserved with `unbounded_allowance_tokens` more input per such input.
UnboundedPolicy = Literal["refuse", "allowance"]


class Enforcement(StrictModel):
    """Defaults for the per-group fields, and the timing knobs of the reservation lifecycle."""

    cascade: list[Scope] = Field(default_factory=_default_cascade, min_length=1)
    on_insufficient: Policy = "block"
    user_header: str = "x-keeptrusts-user"
    hold_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # `block`: a request the wallet cannot fund now, but could once in-flight reservations
    # settle (available + reserved >= its reservation), waits up to this long for their refunds
    # before its 402 (0: refuse at once). Envoy's Check timeout grows by it.
    wait_for_reserved_seconds: float = Field(default=2.0, ge=0, le=60)
    reservation_ttl_seconds: int = Field(default=600, ge=1, le=7 * 24 * 3600)
    # How long a closed reservation record (and a release tombstone) stays in Redis: what makes a
    # late duplicate settle or a retried Check of the same id a no-op. Hours, not days: each
    # one is ~340 B of Redis per request.
    closed_reservation_ttl_seconds: int = Field(default=6 * 3600, ge=60, le=30 * 24 * 3600)
    low_balance_ratio: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)
    alert_thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=lambda: [50, 80, 100]
    )
    on_store_error: Literal["deny", "allow"] = "deny"
    # Reservation allowances for input the request body does not show: an image (per image
    # part; a model's price entry may override it), and the server-side history a Responses
    # request pulls in with previous_response_id / conversation.
    image_input_tokens: int = Field(default=4_000, gt=0)
    # None: the model's context window (a chained Responses request can carry at most that).
    server_history_tokens: int | None = Field(default=None, ge=0)
    # Inputs the body only points at (files, documents by URL, stored prompts, server-side tools,
    # MCP servers): the default for consumer_groups[].unbounded_inputs.
    unbounded_inputs: UnboundedPolicy = "refuse"
    unbounded_allowance_tokens: int | None = Field(default=None, gt=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("cascade")
    @classmethod
    def _unique_scopes(cls, v: list[Scope]) -> list[Scope]:
        if len(set(v)) != len(v):
            raise ValueError("cascade lists a scope twice")
        return v


_HEADER = r"^[a-z0-9][a-z0-9-]{0,99}$"


class JwtIssuer(StrictModel):
    """An issuer whose JWTs Envoy's jwt_authn filter verifies for `user_source: jwt` groups: the
    signature against its JWKS (one of jwks_file / jwks_inline for tests and air-gapped setups,
    jwks_uri in production), `iss`, `aud` and expiry. Envoy copies `user_claim` into the
    issuer's claim header (`claim_header`) after removing any client-sent copy of it."""

    name: IdStr
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(default_factory=list)
    jwks_file: str | None = None
    jwks_inline: str | None = None
    jwks_uri: str | None = None
    jwks_cache_seconds: int = Field(default=300, ge=1, le=86_400)
    # Where the client sends its user token (`Bearer <jwt>` or the bare token): not
    # `authorization`, which carries the consumer key.
    token_header: Annotated[str, Field(pattern=_HEADER)] = "x-keeptrusts-user-token"
    user_claim: str = Field(default="sub", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_jwks(self) -> JwtIssuer:
        given = [
            n for n in ("jwks_file", "jwks_inline", "jwks_uri") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "exactly one of jwks_file, jwks_inline, jwks_uri is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.jwks_uri is not None:
            parsed = urlparse(self.jwks_uri)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError("jwks_uri: must be an http:// or https:// URL with a host")
        if self.token_header in ("authorization", "x-api-key"):
            raise ValueError("token_header: must not be the consumer key's header")
        return self

    @property
    def claim_header(self) -> str:
        """The header Envoy writes the verified user claim into (never trusted from a client:
        the gateway removes it before jwt_authn)."""
        return f"x-keeptrusts-jwt-user-{self.name.lower().replace('_', '-').replace('.', '-')}"


class ConsumerGroup(StrictModel):
    name: IdStr
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    api_key_sha256: str | None = None
    wallet_team_id: IdStr | None = None
    cascade: list[Scope] | None = None
    on_insufficient: Policy | None = None
    user_header: str | None = None
    allowed_models: list[str] | None = None
    # None: enforcement.unbounded_inputs / enforcement.unbounded_allowance_tokens.
    unbounded_inputs: UnboundedPolicy | None = None
    unbounded_allowance_tokens: int | None = Field(default=None, gt=0)
    # Where the user id of a request comes from. `header` (default): the user header, set by a
    # trusted upstream; the key holder may act as any user of its own team. `jwt`: the
    # `user_claim` of a JWT that Envoy verified against `jwt_issuer` (jwt_issuers[].name).
    user_source: Literal["header", "jwt"] = "header"
    jwt_issuer: IdStr | None = None

    @model_validator(mode="after")
    def _jwt_needs_issuer(self) -> ConsumerGroup:
        if self.user_source == "jwt" and self.jwt_issuer is None:
            raise ValueError("jwt_issuer: required when user_source is jwt")
        if self.user_source != "jwt" and self.jwt_issuer is not None:
            raise ValueError("jwt_issuer: only with user_source: jwt")
        return self

    @field_validator("api_key_sha256")
    @classmethod
    def _hex_digest(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256.match(v.lower()):
            raise ValueError("must be 64 hex characters (sha256 of the key)")
        return v.lower() if v is not None else None

    @field_validator("cascade")
    @classmethod
    def _unique_scopes(cls, v: list[Scope] | None) -> list[Scope] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("cascade must list each scope at most once and not be empty")
        return v

    @model_validator(mode="after")
    def _exactly_one_key_source(self) -> ConsumerGroup:
        given = [
            n
            for n, v in (
                ("api_key", self.api_key),
                ("api_key_env", self.api_key_env),
                ("api_key_sha256", self.api_key_sha256),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "exactly one of api_key, api_key_env, api_key_sha256 is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def key_digest(self, environ: dict[str, str] | None = None) -> str:
        """sha256 hex digest of this group's API key, wherever the key comes from."""
        if self.api_key_sha256 is not None:
            return self.api_key_sha256
        if self.api_key is not None:
            return hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()
        env = os.environ if environ is None else environ
        assert self.api_key_env is not None
        value = env.get(self.api_key_env)
        if not value:
            raise KeyError(f"environment variable {self.api_key_env} (api_key_env) is not set")
        return hashlib.sha256(value.encode()).hexdigest()


class CostTracking(StrictModel):
    enabled: bool = True
    wallet_enforcement: bool = True


class PriceSet(StrictModel):
    """Prices per 1M tokens that replace a model's base prices where given (None: keep)."""

    input_per_1m: Decimal | None = Field(default=None, ge=0)
    output_per_1m: Decimal | None = Field(default=None, ge=0)
    cached_input_per_1m: Decimal | None = Field(default=None, ge=0)
    cache_write_per_1m: Decimal | None = Field(default=None, ge=0)
    cache_write_1h_per_1m: Decimal | None = Field(default=None, ge=0)


class LongContextPrice(PriceSet):
    """Long-context tier: a request whose prompt (cache reads and writes included) has MORE than
    `above_input_tokens` tokens pays these prices for all of its tokens (a cliff, not a band)."""

    above_input_tokens: int = Field(gt=0)


class ServiceTierPrice(PriceSet):
    """A provider service tier (OpenAI `service_tier: priority|flex|...`): prices over the base
    ones, and its own long-context prices over the model's."""

    long_context: LongContextPrice | None = None


class ModelPrice(StrictModel):
    """Prices in currency units per 1M tokens; `max_output_tokens` bounds a reservation."""

    input_per_1m: Decimal = Field(ge=0)
    output_per_1m: Decimal = Field(ge=0)
    cached_input_per_1m: Decimal | None = Field(default=None, ge=0)
    # Prompt-cache writes (Anthropic charges them above the input price); None: input price.
    cache_write_per_1m: Decimal | None = Field(default=None, ge=0)
    # One-hour prompt-cache writes (Anthropic `cache_control.ttl: "1h"`); None: cache_write_per_1m.
    cache_write_1h_per_1m: Decimal | None = Field(default=None, ge=0)
    max_output_tokens: int = Field(gt=0)
    # A larger output maximum a provider beta unlocks (`anthropic-beta` header value -> tokens).
    beta_max_output_tokens: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    # Most input tokens one image can cost this model (None: enforcement.image_input_tokens).
    image_input_tokens: int | None = Field(default=None, gt=0)
    aliases: list[str] = Field(default_factory=list)
    provider: ProviderKind | None = None
    # Bills reasoning tokens it never streams (o-series, gpt-5): a stream cut off before its
    # usage cannot be bounded by what it showed and is charged its reservation.
    hidden_reasoning: bool = False
    # Most prompt tokens the model accepts; bounds the server-side history of a Responses
    # request (previous_response_id) when enforcement.server_history_tokens is not set.
    context_window: int | None = Field(default=None, gt=0)
    long_context: LongContextPrice | None = None
    # Service tier name as the provider reports it (`priority`, `flex`) -> its prices.
    service_tiers: dict[str, ServiceTierPrice] = Field(default_factory=dict)


class Pricing(StrictModel):
    unknown_model: Literal["block", "default"] = "block"
    default_model: str | None = None
    include_defaults: bool = True
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_needs_model(self) -> Pricing:
        if self.unknown_model == "default" and not self.default_model:
            raise ValueError("default_model: required when unknown_model is 'default'")
        return self


# Provider account selection: a client must not pick another organisation, project or workspace
# of the org's key (OpenAI organisation/project; the anthropic SDK's workspace and user-profile
# settings, which the `anthropic-*` allow-list would otherwise pass). Removed upstream unless the
# provider config sets them (`providers[].headers`); no `allowed_request_headers` may cover them.
# One owner: the renderer reads this tuple.
ACCOUNT_SELECTION_HEADERS = (
    "openai-organization",
    "openai-project",
    "anthropic-workspace-id",
    "anthropic-user-profile-id",
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")
# The credential (credential_injector) and what Envoy owns on a request.
_UNSETTABLE_HEADERS = frozenset(
    {"authorization", "x-api-key", "host", "content-length", "transfer-encoding", "te"}
)


class Provider(StrictModel):
    name: IdStr
    kind: ProviderKind = "openai"
    url: str
    # The provider key is Envoy's alone: the gateway reads it from this file (a Kubernetes Secret
    # mounted into the gateway pod) and injects it on the provider's cluster; the authz service
    # never sees it. The file holds the bare key, without a trailing newline.
    credential_file: str | None = None
    # Only for `make run`: the environment variable whose value it writes into the gateway's
    # credential file (the service itself never reads it).
    credential_env: str | None = None
    models: list[str] = Field(default_factory=lambda: ["*"])
    timeout_seconds: float = Field(default=120.0, gt=0)
    # Fixed headers Envoy sets on every request to this provider (e.g. OpenAI-Organization,
    # OpenAI-Project: the org's account selection). What clients send under these names, and
    # any x-keeptrusts-* header, never reaches the provider (render-envoy: header_mutation).
    headers: dict[str, str] = Field(default_factory=dict)
    # Client headers that may reach this provider beyond the built-in allow-list (transport
    # essentials, the provider's own API headers, the credential header and `headers` above):
    # exact names or `prefix-*` patterns. Every other client header is removed on the provider
    # cluster (render-envoy: the allow-list Lua upstream filter).
    allowed_request_headers: list[str] = Field(default_factory=list)
    # The service tier this provider account applies to a request that names none (or `auto`),
    # e.g. `default` (OpenAI) or `standard` (Anthropic) when the project is not set to priority.
    # Unset: unknown, so such a request is reserved at the worst case over every tier of the
    # model (it may be billed at priority); settlement always bills the tier the provider reports.
    default_service_tier: str | None = Field(default=None, min_length=1, pattern=r"^[a-z_]+$")

    @field_validator("headers")
    @classmethod
    def _settable_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            low = name.lower()
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r}: not an HTTP header name")
            if low in _UNSETTABLE_HEADERS or low.startswith(("x-keeptrusts-", "x-envoy-")):
                raise ValueError(f"{name!r}: set by the gateway itself, not by configuration")
            if "\r" in value or "\n" in value:
                raise ValueError(f"{name!r}: the value must be one line")
        return {k.lower(): val for k, val in v.items()}

    @field_validator("allowed_request_headers")
    @classmethod
    def _allowable_headers(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for entry in v:
            low = entry.lower()
            is_prefix = low.endswith("-*")
            name = low[:-1] if is_prefix else low  # a prefix keeps its trailing "-"
            if not _HEADER_NAME.match(name.rstrip("-") if is_prefix else name):
                raise ValueError(f"{entry!r}: not an HTTP header name or a `prefix-*` pattern")

            def covers(header: str, name: str = name, is_prefix: bool = is_prefix) -> bool:
                return header.startswith(name) if is_prefix else header == name

            if name.startswith(("x-keeptrusts-", "x-envoy-")) or covers("x-keeptrusts-"):
                raise ValueError(f"{entry!r}: the gateway's own headers never go upstream")
            if any(covers(h) for h in ACCOUNT_SELECTION_HEADERS):
                raise ValueError(
                    f"{entry!r}: account selection is never taken from the client; "
                    "set it in providers[].headers"
                )
            if low not in out:
                out.append(low)
        return out

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v.rstrip("/")


class RedisSettings(StrictModel):
    url: str = "redis://127.0.0.1:6379/0"
    mode: Literal["standalone", "cluster", "sentinel"] = "standalone"
    sentinel_master: str | None = None
    socket_timeout_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _sentinel_master(self) -> RedisSettings:
        if self.mode == "sentinel" and not self.sentinel_master:
            raise ValueError("sentinel_master: required when mode is 'sentinel'")
        return self


class AdminToken(StrictModel):
    name: IdStr
    sha256: str
    roles: list[str] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, v: str) -> str:
        if not _SHA256.match(v.lower()):
            raise ValueError("must be 64 hex characters (sha256 of the token)")
        return v.lower()

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: list[str]) -> list[str]:
        for role in v:
            if role in ("billing", "viewer"):
                continue
            if role.startswith("team:") and re.match(_ID, role[5:]):
                continue
            raise ValueError(f"unknown role {role!r} (billing, viewer or team:<team_id>)")
        return v


class Admin(StrictModel):
    tokens: list[AdminToken] = Field(default_factory=list)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Signing(StrictModel):
    """The key the Check signs each reservation with (HMAC-SHA256) and the access-log consumer
    verifies before it settles or releases one. Every replica must read the same key file (the
    two access loggers send each entry to two replicas). Each file holds one key of at least 32
    bytes (e.g. `openssl rand -hex 32`); surrounding whitespace is ignored.

    Rotation: put the new key in `key_file` and the old one in `previous_key_file` on every
    replica; entries signed with either verify (the signature names its key id), new Checks are
    signed with `key_file`. Drop `previous_key_file` once the reservations of the old key are
    closed (reservation TTL + closed-record TTL).

    Without `key_file` a service on loopback or a Unix socket signs with a random per-process
    key and says so at start-up (fine for one replica on a laptop; replicas would refuse each
    other's entries); a service on a non-loopback TCP bind refuses to start without one.
    $KEEPTRUSTS_SIGNING_KEY_FILE and $KEEPTRUSTS_SIGNING_PREVIOUS_KEY_FILE override the paths."""

    key_file: str | None = None
    previous_key_file: str | None = None

    @model_validator(mode="after")
    def _previous_needs_current(self) -> Signing:
        if self.previous_key_file is not None and self.key_file is None:
            raise ValueError("previous_key_file: only with key_file (the key that signs now)")
        return self


class ServerTls(StrictModel):
    """mTLS on the gRPC port (Check, access log, wallet API, health): the service presents
    `cert_file`/`key_file` and accepts only clients whose certificate `client_ca_file` signed
    (Envoy's, see `gateway.authz_tls`) AND names one of `allowed_client_names`. A client without
    such a certificate gets no answer (no handshake, or PERMISSION_DENIED before any servicer)."""

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_ca_file: str = Field(min_length=1)
    # The CA signing a certificate is not enough (it also signs the service's own certificate,
    # and may sign other workloads'): the client certificate must name one of these, as its
    # subject CN or one of its SANs. Default: the name `make run` and deploy/base/tls.yaml give
    # the gateway's (Envoy's) client certificate.
    allowed_client_names: list[str] = Field(
        default_factory=lambda: ["keeptrusts-gateway"], min_length=1
    )

    @field_validator("allowed_client_names")
    @classmethod
    def _names_not_blank(cls, names: list[str]) -> list[str]:
        if any(not n.strip() for n in names):
            raise ValueError("names must not be blank")
        return names


class Server(StrictModel):
    # Governs the gRPC port (Check, access log, wallet API) AND /metrics. Loopback by default:
    # whoever reaches these ports can ask for Checks, push access-log entries, scrape balances.
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=9191, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # On SIGTERM a replica first reports NOT_SERVING and keeps serving this long, so the gateway's
    # health checks (two failures 0.5 s apart) take it out of rotation before it stops accepting.
    drain_seconds: float = Field(default=1.5, ge=0, le=60)
    # SO_REUSEPORT on the gRPC port: a replacement process binds while the old one drains.
    reuse_port: bool = True

    # A plaintext bind beyond loopback must be acknowledged: say so only where a NetworkPolicy
    # (deploy/base/networkpolicies.yaml) admits nothing but the gateway pods and Prometheus.
    allow_plaintext_non_loopback: bool = False
    signing: Signing = Field(default_factory=Signing)

    # Client certificates required on the gRPC port (the proxy's): any bind is then fine.
    tls: ServerTls | None = None
    # Sidecar mode: serve gRPC on this Unix socket only (no TCP port), in a volume shared only by
    # the proxy and the service containers. /metrics stays on host:metrics_port.
    uds_path: str | None = Field(default=None, min_length=1)
    # grpc.health.v1 ONLY, plaintext, on host:health_port: for kubelet gRPC probes, which cannot
    # present a client certificate to the mTLS port. Serves nothing else.
    health_port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _plaintext_on_loopback(self) -> Server:
        if self.tls is not None and self.uds_path is not None:
            raise ValueError("uds_path: give either tls (TCP with mTLS) or uds_path, not both")
        secured = self.tls is not None or self.uds_path is not None
        if not is_loopback(self.host) and not secured and not self.allow_plaintext_non_loopback:
            raise ValueError(
                f"host: {self.host!r} is not a loopback address and the gRPC and metrics ports "
                "are plaintext; bind 127.0.0.1, configure server.tls (client certificates "
                "required), or set server.allow_plaintext_non_loopback: true "
                "where a network policy admits only the gateway and Prometheus"
            )
        return self

    @model_validator(mode="after")
    def _shared_key_beyond_loopback(self) -> Server:
        if self.uds_path is None and not is_loopback(self.host) and self.signing.key_file is None:
            raise ValueError(
                f"signing.key_file: required when host is {self.host!r} (not loopback): replicas "
                "must share one reservation signing key, or the access log of one is refused by "
                "the others (set it, or $KEEPTRUSTS_SIGNING_KEY_FILE)"
            )
        return self


class AuthzEndpoint(StrictModel):
    """One authz replica, or a DNS name Envoy resolves to every replica (a headless Service)."""

    host: str = Field(min_length=1)
    port: int = Field(default=9191, ge=1, le=65535)


class GatewayAuthzTls(StrictModel):
    """Envoy's side of the mTLS to the authz service (`server.tls`): its client certificate and
    key, the CA that signed the service's certificate, and the name the service's certificate
    must carry (a DNS SAN, or an IP SAN for an address; also sent as SNI)."""

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    ca_file: str = Field(min_length=1)
    server_name: str = Field(min_length=1)


class Gateway(StrictModel):
    """What `render-envoy` needs to know about where things run."""

    # The Envoy listener clients send LLM requests to (loopback by default, as `make run`).
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=10000, ge=1, le=65535)
    admin_port: int = Field(default=9901, ge=1, le=65535)
    # Envoy's admin interface can stop the proxy (/quitquitquit): loopback only by default.
    admin_host: str = "127.0.0.1"
    authz_host: str = "127.0.0.1"
    authz_port: int = Field(default=9191, ge=1, le=65535)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    check_timeout_seconds: float = Field(default=2.0, gt=0)
    # CA bundle for https provider clusters (system bundle of Debian/Ubuntu images).
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    # How often Envoy flushes buffered access-log entries to the service (reconciliation lag).
    access_log_flush_ms: int = Field(default=200, ge=10, le=60_000)
    # Add `stream_options.include_usage: true` to OpenAI streaming requests that lack it, so the
    # provider reports the real usage; when false such streams settle at the estimate.
    inject_stream_usage: bool = True
    # Several authz replicas (each host may also be a DNS name resolving to several). Without it
    # the one endpoint authz_host:authz_port is used; giving both is an error.
    authz_endpoints: list[AuthzEndpoint] = Field(default_factory=list)
    # Stream every access-log entry to two replicas, so the loss of one loses no settlement
    # (settling is idempotent by reservation id; the second copy is a no-op). Default: on when
    # authz_endpoints lists more than one endpoint.
    access_log_to_two_replicas: bool | None = None
    # mTLS to the authz cluster(s) (Check, access log, wallet API, health checks).
    authz_tls: GatewayAuthzTls | None = None
    # Sidecar mode: reach the service on this Unix socket (`server.uds_path`) instead of TCP.
    authz_uds_path: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way_to_name_the_authz(self) -> Gateway:
        if self.authz_endpoints and {"authz_host", "authz_port"} & self.model_fields_set:
            raise ValueError(
                "authz_endpoints: give either authz_endpoints or authz_host/authz_port, not both"
            )
        if self.authz_uds_path is not None and (self.authz_endpoints or self.authz_tls is not None):
            raise ValueError(
                "authz_uds_path: a Unix socket is one local endpoint without TLS; "
                "give neither authz_endpoints nor authz_tls with it"
            )
        seen: dict[tuple[str, int], int] = {}
        for i, e in enumerate(self.authz_endpoints):
            if (e.host, e.port) in seen:
                raise ValueError(
                    f"authz_endpoints[{i}]: duplicate endpoint {e.host}:{e.port} "
                    f"(also authz_endpoints[{seen[(e.host, e.port)]}])"
                )
            seen[(e.host, e.port)] = i
        return self

    def authz_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every authz endpoint Envoy balances Checks and access logs over."""
        if self.authz_endpoints:
            return [(e.host, e.port) for e in self.authz_endpoints]
        return [(self.authz_host, self.authz_port)]

    def duplicates_access_log(self) -> bool:
        if self.access_log_to_two_replicas is not None:
            return self.access_log_to_two_replicas
        return len(self.authz_endpoints) > 1


class Alerts(StrictModel):
    webhook_url: str | None = None
    # Besides the wallets of every settle batch, each replica re-checks all wallets this often, to
    # catch crossings caused by expiries and admin moves (reclaim, transfer).
    sweep_interval_seconds: float = Field(default=10.0, gt=0, le=3600)


class BudgetCalendarSettings(StrictModel):
    """Where periods start: local midnight in `timezone`; quarters/years at the fiscal month."""

    timezone: str = "UTC"
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    # The service re-checks due boundaries and forecasts this often (and right after each
    # boundary); every replica does, the Lua script applies each boundary once.
    run_interval_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v


Rollover = Literal["reset", "carry", "carry_capped", "carry_debt"]
BudgetPeriod = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]


class Budget(StrictModel):
    """A recurring allocation from the org pool to a team wallet (or a user wallet of the team)."""

    team_id: IdStr
    user_id: IdStr | None = None
    amount: Decimal = Field(gt=0)
    period: BudgetPeriod
    rollover: Rollover = "reset"
    carry_cap: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _cap_goes_with_carry_capped(self) -> Budget:
        if self.rollover == "carry_capped" and self.carry_cap is None:
            raise ValueError("carry_cap: required when rollover is carry_capped")
        if self.rollover != "carry_capped" and self.carry_cap is not None:
            raise ValueError(f"carry_cap: only with rollover carry_capped (got {self.rollover})")
        return self

    @property
    def wallet_id(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"team:{self.team_id}"


class LedgerSettings(StrictModel):
    """PostgreSQL as the ledger's system of record; without `postgres_url` the ledger lives in
    Redis only (as before) and nothing is archived. With it, the settler also journals every
    settle batch there before Redis (the settlement journal `restore` recovers lost charges
    from)."""

    postgres_url: str | None = None
    # Entries kept in the Redis stream below the archived high-water mark (recent history served
    # from Redis; the rest is in PostgreSQL only).
    redis_tail_entries: int = Field(default=10_000, ge=0)
    archive_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    archive_batch_entries: int = Field(default=5_000, ge=1, le=100_000)

    @field_validator("postgres_url")
    @classmethod
    def _postgres_scheme(cls, v: str | None) -> str | None:
        if v is not None:
            scheme = urlparse(v).scheme
            if scheme not in ("postgresql", "postgres"):
                raise ValueError("must be a postgresql:// URL")
        return v


class Config(StrictModel):
    organization: Organization = Field(default_factory=Organization)
    consumer_groups: list[ConsumerGroup] = Field(default_factory=list)
    cost_tracking: CostTracking = Field(default_factory=CostTracking)
    enforcement: Enforcement = Field(default_factory=Enforcement)
    pricing: Pricing = Field(default_factory=Pricing)
    providers: list[Provider] = Field(default_factory=list)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    admin: Admin = Field(default_factory=Admin)
    server: Server = Field(default_factory=Server)
    gateway: Gateway = Field(default_factory=Gateway)
    alerts: Alerts = Field(default_factory=Alerts)
    budget_calendar: BudgetCalendarSettings = Field(default_factory=BudgetCalendarSettings)
    budgets: list[Budget] = Field(default_factory=list)
    jwt_issuers: list[JwtIssuer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _jwt_issuers_named(self) -> Config:
        names: dict[str, int] = {}
        for i, issuer in enumerate(self.jwt_issuers):
            if issuer.name in names:
                raise ValueError(
                    f"jwt_issuers[{i}].name: duplicate issuer name {issuer.name!r} "
                    f"(also jwt_issuers[{names[issuer.name]}])"
                )
            names[issuer.name] = i
        # Distinct names can derive the same claim header (case, '_' and '.' fold to '-'): one
        # issuer's token would then name the user for the other issuer's groups.
        headers: dict[str, int] = {}
        for i, issuer in enumerate(self.jwt_issuers):
            header = issuer.claim_header
            if header in headers:
                raise ValueError(
                    f"jwt_issuers[{i}].name: {issuer.name!r} derives the claim header {header} "
                    f"that jwt_issuers[{headers[header]}] "
                    f"({self.jwt_issuers[headers[header]].name!r}) already uses; rename one"
                )
            headers[header] = i
        for i, g in enumerate(self.consumer_groups):
            if g.jwt_issuer is not None and g.jwt_issuer not in names:
                raise ValueError(
                    f"consumer_groups[{i}].jwt_issuer: {g.jwt_issuer!r} is not in jwt_issuers "
                    f"({', '.join(sorted(names)) or 'none configured'})"
                )
        return self

    def jwt_issuer(self, name: str) -> JwtIssuer:
        for issuer in self.jwt_issuers:
            if issuer.name == name:
                return issuer
        raise KeyError(name)

    @model_validator(mode="after")
    def _budgets_name_configured_teams(self) -> Config:
        teams = self.team_ids()
        wallets: dict[str, int] = {}
        for i, b in enumerate(self.budgets):
            if b.team_id not in teams:
                raise ValueError(
                    f"budgets[{i}].team_id: {b.team_id!r} is not a configured team "
                    f"(teams: {', '.join(sorted(teams)) or 'none'})"
                )
            if b.wallet_id in wallets:
                raise ValueError(
                    f"budgets[{i}]: a second budget for {b.wallet_id} "
                    f"(also budgets[{wallets[b.wallet_id]}])"
                )
            wallets[b.wallet_id] = i
        return self

    def team_ids(self) -> set[str]:
        """Teams the configuration knows: every consumer group's wallet team."""
        return {g.wallet_team_id for g in self.consumer_groups if g.wallet_team_id}

    ledger: LedgerSettings = Field(default_factory=LedgerSettings)

    @model_validator(mode="after")
    def _unique_names_and_keys(self) -> Config:
        seen: dict[str, int] = {}
        for i, g in enumerate(self.consumer_groups):
            if g.name in seen:
                raise ValueError(
                    f"consumer_groups[{i}].name: duplicate group name {g.name!r} "
                    f"(also consumer_groups[{seen[g.name]}])"
                )
            seen[g.name] = i
        # The one owner of "allowance needs tokens", both levels: the enforcement default (also
        # with no group inheriting it yet), then per group through unbounded_for.
        e = self.enforcement
        if e.unbounded_inputs == "allowance" and e.unbounded_allowance_tokens is None:
            raise ValueError(
                "enforcement.unbounded_allowance_tokens: required when unbounded_inputs is "
                "'allowance'"
            )
        for i, g in enumerate(self.consumer_groups):
            policy, tokens = self.unbounded_for(g)
            if policy == "allowance" and tokens is None:
                raise ValueError(
                    f"consumer_groups[{i}].unbounded_allowance_tokens: required when "
                    "unbounded_inputs is 'allowance' (here or under enforcement)"
                )
        digests: dict[str, int] = {}
        for i, g in enumerate(self.consumer_groups):
            if g.api_key is None and g.api_key_sha256 is None:
                continue  # env keys are checked when resolved
            d = g.key_digest()
            if d in digests:
                raise ValueError(
                    f"consumer_groups[{i}]: duplicate API key "
                    f"(same as consumer_groups[{digests[d]}])"
                )
            digests[d] = i
        providers: dict[str, int] = {}
        for i, p in enumerate(self.providers):
            if p.name in providers:
                raise ValueError(
                    f"providers[{i}].name: duplicate provider name {p.name!r} "
                    f"(also providers[{providers[p.name]}])"
                )
            providers[p.name] = i
        return self

    def group(self, name: str) -> ConsumerGroup:
        for g in self.consumer_groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def cascade_for(self, group: ConsumerGroup) -> list[Scope]:
        """The ordered wallet scopes that fund this group (no team wallet -> org)."""
        if group.wallet_team_id is None:
            return ["org"]
        scopes = group.cascade or self.enforcement.cascade
        return list(scopes)

    def policy_for(self, group: ConsumerGroup) -> Policy:
        return group.on_insufficient or self.enforcement.on_insufficient

    def unbounded_for(self, group: ConsumerGroup) -> tuple[UnboundedPolicy, int | None]:
        """The group's unbounded_inputs policy and its allowance tokens per such input."""
        policy = group.unbounded_inputs or self.enforcement.unbounded_inputs
        tokens = group.unbounded_allowance_tokens or self.enforcement.unbounded_allowance_tokens
        return policy, tokens

    def holds(self) -> bool:
        """Whether any consumer group waits on cost tickets."""
        return any(self.policy_for(g) == "hold" for g in self.consumer_groups)

    def blocks(self) -> bool:
        """Whether any consumer group refuses (`block`) and so may wait for reserved money."""
        return any(self.policy_for(g) == "block" for g in self.consumer_groups)

    def check_wait_seconds(self) -> float:
        """The longest a Check may wait inside the service on top of the store call: a hold's
        cost ticket or a block's wait for reserved money (one request waits for one of them)."""
        waits = [0.0]
        if self.holds():
            waits.append(self.enforcement.hold_timeout_seconds)
        if self.blocks() and self.cost_tracking.enabled and self.cost_tracking.wallet_enforcement:
            waits.append(self.enforcement.wait_for_reserved_seconds)
        return max(waits)

    def shutdown_grace_seconds(self) -> float:
        """How long a stopping server lets in-flight Checks finish: never shorter than a held
        request can wait, or a rollout would cut held requests off."""
        grace = self.server.shutdown_grace_seconds
        if self.check_wait_seconds() > 0:
            held = self.check_wait_seconds() + self.gateway.check_timeout_seconds
            grace = max(grace, held)
        return grace

    def timing_warnings(self) -> list[str]:
        """Timeouts that contradict each other (valid, but surprising in production)."""
        out: list[str] = []
        longest = max((p.timeout_seconds for p in self.providers), default=0.0)
        needed = longest + self.gateway.check_timeout_seconds + self.check_wait_seconds()
        if self.enforcement.reservation_ttl_seconds <= needed:
            out.append(
                f"enforcement.reservation_ttl_seconds: {self.enforcement.reservation_ttl_seconds}"
                f" is not longer than the longest request can take ({needed:g} s: provider timeout"
                " + check timeout + hold timeout); such requests would be settled at their"
                " estimate by the sweeper before their real usage arrives"
            )
        closed = self.enforcement.closed_reservation_ttl_seconds
        ttl = self.enforcement.reservation_ttl_seconds
        if closed < ttl:
            out.append(
                f"enforcement.closed_reservation_ttl_seconds: {closed} is shorter than"
                f" enforcement.reservation_ttl_seconds ({ttl});"
                " a closed reservation would be forgotten while its access-log entry or a retried"
                " Check of the same id can still arrive, and that retry would be charged again"
            )
        return out

    def user_header_for(self, group: ConsumerGroup) -> str:
        """The header the group's user id is read from: the configured user header, or for
        `user_source: jwt` the header Envoy's jwt_authn writes the verified claim into."""
        if group.user_source == "jwt" and group.jwt_issuer is not None:
            return self.jwt_issuer(group.jwt_issuer).claim_header
        return (group.user_header or self.enforcement.user_header).lower()
