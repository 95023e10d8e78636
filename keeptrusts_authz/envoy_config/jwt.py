"""User identity from a verified JWT (`user_source: jwt` groups): the gateway filters that
`render-envoy` puts in front of ext_authz.

1. `envoy.filters.http.header_mutation` removes every issuer's claim header a client sent: only
   Envoy itself may write them.
2. `envoy.filters.http.jwt_authn` looks for a token in each issuer's `token_header`, verifies its
   signature against the issuer's JWKS (local file, inline, or a remote URI fetched and cached by
   Envoy), `iss`, `aud` and `exp`, and copies `user_claim` into the issuer's claim header
   (`claim_to_headers`). The requirement is "any issuer, or none": a missing or failed token does
   not stop the request here; the Check refuses it (401 `invalid_user_token`) for a group whose
   user comes from a JWT, and ignores it for the others.

Without `jwt_issuers` nothing is rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from keeptrusts_authz.config.models import Config, JwtIssuer

Node = dict[str, Any]
_T = "type.googleapis.com/"
JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"
CLAIM_STRIP_FILTER = "keeptrusts.strip_user_claims"


def jwks_cluster_name(issuer: JwtIssuer) -> str:
    return f"jwks_{issuer.name}"


def _provider(issuer: JwtIssuer) -> Node:
    node: Node = {
        "issuer": issuer.issuer,
        "from_headers": [
            {"name": issuer.token_header, "value_prefix": "Bearer "},
            {"name": issuer.token_header},
        ],
        "forward": False,
        "claim_to_headers": [{"header_name": issuer.claim_header, "claim_name": issuer.user_claim}],
    }
    if issuer.audiences:
        node["audiences"] = list(issuer.audiences)
    if issuer.jwks_file is not None:
        node["local_jwks"] = {"filename": issuer.jwks_file}
    elif issuer.jwks_inline is not None:
        node["local_jwks"] = {"inline_string": issuer.jwks_inline}
    else:
        assert issuer.jwks_uri is not None
        node["remote_jwks"] = {
            "http_uri": {
                "uri": issuer.jwks_uri,
                "cluster": jwks_cluster_name(issuer),
                "timeout": "5s",
            },
            "cache_duration": f"{issuer.jwks_cache_seconds}s",
            # Fetch at start-up (and keep refreshing), so the first request does not wait.
            "async_fetch": {},
            "retry_policy": {"num_retries": 3},
        }
    return node


def jwt_filters(cfg: Config) -> list[Node]:
    """The claim-strip and jwt_authn filters, to go before ext_authz ([] without issuers)."""
    if not cfg.jwt_issuers:
        return []
    strip: Node = {
        "name": CLAIM_STRIP_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [{"remove": i.claim_header} for i in cfg.jwt_issuers]
            },
        },
    }
    requirements: list[Node] = [{"provider_name": i.name} for i in cfg.jwt_issuers]
    requirements.append({"allow_missing_or_failed": {}})
    authn: Node = {
        "name": JWT_AUTHN_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {i.name: _provider(i) for i in cfg.jwt_issuers},
            "rules": [
                {
                    "match": {"prefix": "/"},
                    "requires": {"requires_any": {"requirements": requirements}},
                }
            ],
        },
    }
    return [strip, authn]


def jwks_clusters(cfg: Config, tls_for: Callable[[str], Node]) -> list[Node]:
    """One cluster per issuer with a remote JWKS (TLS for https, verified by `tls_for(host)`)."""
    out: list[Node] = []
    for issuer in cfg.jwt_issuers:
        if issuer.jwks_uri is None:
            continue
        url = urlparse(issuer.jwks_uri)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        cluster: Node = {
            "name": jwks_cluster_name(issuer),
            "type": "LOGICAL_DNS",
            "dns_lookup_family": "V4_PREFERRED",
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": jwks_cluster_name(issuer),
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": host, "port_value": port}
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
        if url.scheme == "https":
            cluster["transport_socket"] = tls_for(host)
        out.append(cluster)
    return out


__all__ = [
    "CLAIM_STRIP_FILTER",
    "JWT_AUTHN_FILTER",
    "jwks_cluster_name",
    "jwks_clusters",
    "jwt_filters",
]
