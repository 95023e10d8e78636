"""Configuration: one strict pydantic model tree loaded from YAML."""

from keeptrusts_authz.config.loader import ConfigError, load_config, parse_config
from keeptrusts_authz.config.models import Config, ConsumerGroup, ModelPrice, Provider

__all__ = [
    "Config",
    "ConfigError",
    "ConsumerGroup",
    "ModelPrice",
    "Provider",
    "load_config",
    "parse_config",
]
