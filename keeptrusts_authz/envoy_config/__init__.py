"""Envoy configuration for the gateway: `render_envoy_yaml(cfg)` and the Lua usage filter."""

from keeptrusts_authz.envoy_config.render import (
    AUTHZ_CLUSTER,
    EXT_AUTHZ_NAMESPACE,
    PROVIDER_HEADER,
    RESERVATION_HEADER,
    USAGE_NAMESPACE,
    render_envoy_yaml,
    usage_filter_lua,
)

__all__ = [
    "AUTHZ_CLUSTER",
    "EXT_AUTHZ_NAMESPACE",
    "PROVIDER_HEADER",
    "RESERVATION_HEADER",
    "USAGE_NAMESPACE",
    "render_envoy_yaml",
    "usage_filter_lua",
]
