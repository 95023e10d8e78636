"""Harness shared by tests/ and bench/: a real redis-server, the real Envoy, a full local stack."""
