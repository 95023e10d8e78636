"""Prometheus metrics (prefix `keeptrusts_`)."""
