"""keeptrusts-authz: team budget allocation for AI spend, enforced at the Envoy gateway."""

__version__ = "0.1.0"
