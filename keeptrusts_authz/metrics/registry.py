"""Process metrics for the gateway path. Labels are bounded: never keys, tokens or free text.

One team label convention across every metric (process, wallet and usage): `team` is the bare
team id (`team_eng`, never `team:team_eng`), "" where there is none; the wallet gauges carry it
next to `scope` and `wallet`, so `keeptrusts_wallet_balance{team="team_eng"}` and
`keeptrusts_spend_total{team="team_eng"}` select the same team.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AUTHZ_DECISIONS = Counter(
    "keeptrusts_authz_decisions",
    "ext_authz decisions by decision (allow, warn, hold, block, error) and reason.",
    ["decision", "reason"],
)
CHECK_LATENCY = Histogram(
    "keeptrusts_check_duration_seconds",
    "Time to answer one ext_authz Check, without the time a held Check waited on its cost "
    "ticket (that wait is keeptrusts_hold_wait_seconds) or a block Check waited for reserved "
    "money to settle (keeptrusts_reserved_wait_seconds).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
)
HELD_REQUESTS = Gauge(
    "keeptrusts_held_requests",
    "Checks of this replica held now on a cost ticket (hold policy), waiting for funds or a "
    "decision.",
    multiprocess_mode="livesum",
)
RESERVED_WAIT = Histogram(
    "keeptrusts_reserved_wait_seconds",
    "Time a `block` Check waited for in-flight reservations to settle "
    "(enforcement.wait_for_reserved_seconds), by outcome (reserved_wait_funded: admitted, "
    "reserved_wait_spent: the money was really spent, reserved_wait_timeout).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
HOLD_WAIT = Histogram(
    "keeptrusts_hold_wait_seconds",
    "Time a held Check waited on its cost ticket, by outcome (hold_funded, hold_approved, "
    "hold_denied, hold_timeout).",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
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
    multiprocess_mode="livemax",
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
    multiprocess_mode="livesum",
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
ACCESS_LOG_REJECTED = Counter(
    "keeptrusts_accesslog_rejected",
    "Access-log entries naming a reservation that were refused without settling or releasing "
    "anything, by reason (missing_signature, bad_signature, unknown_key, field_mismatch, "
    "expired). Anything but a key rotation gone wrong means someone else is writing entries.",
    ["reason"],
)
SETTLE_BOUND_VIOLATIONS = Counter(
    "keeptrusts_settle_bound_violations",
    "Settlements whose cost exceeded the reservation's signed estimate (charged in full: the "
    "money was spent, but the reservation was meant to be an upper bound).",
)
PERIOD_BOUNDARIES = Counter(
    "keeptrusts_period_boundaries",
    "Budget period boundaries handled, by outcome "
    "(applied, replayed, stale, insufficient, wrong_team).",
    ["outcome"],
)
# Labelled by the wallets of configured budgets only (a bounded set from the config).
WALLET_PROJECTED_PERIOD_SPEND = Gauge(
    "keeptrusts_wallet_projected_period_spend",
    "Projected spend at the end of the current budget period from its burn so far (currency).",
    ["wallet"],
    multiprocess_mode="mostrecent",
)
WALLET_PERIOD_ALLOCATION = Gauge(
    "keeptrusts_wallet_period_allocation",
    "What the current budget period started with: carried in + its allocation (currency units).",
    ["wallet"],
    multiprocess_mode="mostrecent",
)
LEDGER_ARCHIVE_LAG_ENTRIES = Gauge(
    "keeptrusts_ledger_archive_lag_entries",
    "Redis ledger entries not yet archived to PostgreSQL when the last archive pass started.",
    multiprocess_mode="mostrecent",
)
LEDGER_ARCHIVE_LAG_SECONDS = Gauge(
    "keeptrusts_ledger_archive_lag_seconds",
    "Age of the oldest Redis ledger entry not yet archived when the last archive pass started.",
    multiprocess_mode="mostrecent",
)
LEDGER_ARCHIVED_ENTRIES = Counter(
    "keeptrusts_ledger_archived_entries",
    "Ledger entries copied from Redis to PostgreSQL.",
)
SETTLEMENT_JOURNAL_ROWS = Counter(
    "keeptrusts_settlement_journal_rows",
    "Settlements written to the PostgreSQL settlement journal before their Redis settle.",
)
SETTLEMENT_JOURNAL_FAILURES = Counter(
    "keeptrusts_settlement_journal_failures",
    "Settlements the settler could not journal (PostgreSQL down or slow): settled in Redis "
    "anyway, covered only once the archiver has copied them.",
)
