"""Envoy configuration for the gateway: `render_envoy_yaml(cfg)` and the Lua usage filter.

The names the rendered config shares with the service live in `keeptrusts_authz.envoy_contract`.
"""

from keeptrusts_authz.envoy_config.render import render_envoy_yaml, usage_filter_lua

__all__ = ["render_envoy_yaml", "usage_filter_lua"]
