"""Process metrics for the gateway path. Labels are bounded: never keys, tokens or free text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AUTHZ_DECISIONS = Counter(
    "keeptrusts_authz_decisions",
    "ext_authz decisions by decision (allow, warn, hold, block, error) and reason.",
    ["decision", "reason"],
)
CHECK_LATENCY = Histogram(
    "keeptrusts_check_duration_seconds",
    "Time to answer one ext_authz Check.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
)
STORE_ERRORS = Counter(
    "keeptrusts_store_errors",
    "Redis calls that failed (unreachable, timeout), by operation.",
    ["operation"],
)
STORE_REGRESSED = Gauge(
    "keeptrusts_store_regressed",
    "1 while the wallet store is known to have lost or rolled back its books (Checks answer 503 "
    "store_regressed until `keeptrusts-authz restore`), by organization.",
    ["org"],
)


def set_store_regressed(org: str, regressed: bool) -> None:
    STORE_REGRESSED.labels(org).set(1 if regressed else 0)


SETTLEMENTS = Counter(
    "keeptrusts_settlements",
    "Reservations closed by the access-log consumer or the sweeper, by outcome.",
    ["outcome"],
)
RECONCILIATION_LAG = Histogram(
    "keeptrusts_reconciliation_lag_seconds",
    "From the end of a request (access-log entry) to its settlement in Redis.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
SETTLE_QUEUE = Gauge(
    "keeptrusts_settle_queue_depth",
    "Access-log settlements waiting to be written to Redis.",
)
EXPIRED_RESERVATIONS = Counter(
    "keeptrusts_expired_reservations",
    "Reservations settled at their estimate by the sweeper because no access-log entry came.",
)
ACCESS_LOG_ENTRIES = Counter(
    "keeptrusts_access_log_entries",
    "Access-log entries received, by what was done with them.",
    ["action"],
)
