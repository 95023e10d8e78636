"""Scrape-time wallet gauges and usage counters: every replica reads the same truth from Redis.

The collector runs on the metrics HTTP thread. It reads a `WalletSnapshot` (one pipelined round
trip: wallets, usage counters, daily burn, reservation index) at most once per `ttl` seconds;
concurrent scrapes share one read. Values are finite floats in currency units; a wallet with no
burn in the window has no depletion sample (never +Inf). With `usage` labels it also exports the
spend/tokens/settled-requests counters (metrics/usage.py), org-wide totals like the gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keeptrusts_authz.errors import InvalidInput, StoreUnavailable
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.metrics.usage import UsageLabels, add_usage, usage_families, usage_totals
from keeptrusts_authz.money import MICROS_PER_UNIT
from keeptrusts_authz.store.observability import WalletSnapshot
from keeptrusts_authz.wallets.models import parse_wallet_id, wallet_status

log = logging.getLogger(__name__)

STATUSES = ("healthy", "low", "depleted")
MAX_WALLETS = 20_000  # label cardinality guard: beyond this, wallets are not exported one by one


def _units(micros: int) -> float:
    return micros / MICROS_PER_UNIT


class _Families(NamedTuple):
    """The scrape's gauge families, in export order (iterating yields them in this order)."""

    balance: GaugeMetricFamily
    reserved: GaugeMetricFamily
    allocated: GaugeMetricFamily
    spent: GaugeMetricFamily
    status: GaugeMetricFamily
    burn_rate: GaugeMetricFamily
    depletion: GaugeMetricFamily
    open_res: GaugeMetricFamily
    overdue: GaugeMetricFamily
    success: GaugeMetricFamily
    duration: GaugeMetricFamily


class WalletCollector(Collector):
    """prometheus_client custom collector for `keeptrusts_wallet_*` and reservation gauges."""

    def __init__(
        self,
        read: Callable[[], WalletSnapshot],
        low_balance_ratio: Decimal,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        usage: UsageLabels | None = None,
    ) -> None:
        self._read = read
        self._usage = usage
        self._ratio = low_balance_ratio
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, WalletSnapshot | None, float] | None = None

    def _snapshot(self) -> tuple[WalletSnapshot | None, float]:
        """(snapshot or None when Redis failed, read duration); shared for `ttl` seconds."""
        with self._lock:  # a second concurrent scrape waits for the first read and reuses it
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1], self._cached[2]
            started = time.perf_counter()
            snap: WalletSnapshot | None
            try:
                snap = self._read()
            except StoreUnavailable:
                m.STORE_ERRORS.labels("scrape").inc()
                log.warning("wallet scrape: Redis unreachable")
                snap = None
            except Exception:  # a scrape must never fail because of us
                m.STORE_ERRORS.labels("scrape").inc()
                log.exception("wallet scrape failed")
                snap = None
            took = time.perf_counter() - started
            self._cached = (now, snap, took)
            return snap, took

    def describe(self) -> Iterator[Metric]:
        # Descriptions without touching Redis (registration must not do I/O).
        yield from self._families()
        if self._usage is not None:
            yield from usage_families()

    def _families(self) -> _Families:
        labels = ["scope", "wallet", "team"]  # team: the bare team id (metrics/registry.py)
        return _Families(
            GaugeMetricFamily(
                "keeptrusts_wallet_balance",
                "Available balance of the wallet (currency units; negative when overdrawn).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_reserved",
                "Amount held for in-flight requests (currency units).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_allocated_total",
                "Net funding of the wallet; for org the total credited (currency units).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_spent_total",
                "Total settled spend charged to the wallet (currency units).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_status",
                "1 for the wallet's current status (healthy, low, depleted), 0 for the others.",
                labels=[*labels, "status"],
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_burn_rate_per_day",
                "Average spend per day over the last 7 days (currency units per day).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_projected_depletion_seconds",
                "Seconds until the balance reaches zero at the 7-day burn rate "
                "(absent when nothing was spent; 0 when already depleted).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "keeptrusts_open_reservations",
                "Reservations held for in-flight requests (all replicas).",
            ),
            GaugeMetricFamily(
                "keeptrusts_overdue_reservations",
                "Open reservations past their deadline, waiting for the sweeper.",
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_scrape_success",
                "1 if the wallet gauges of this scrape were read from Redis, else 0.",
            ),
            GaugeMetricFamily(
                "keeptrusts_wallet_scrape_duration_seconds",
                "Time the last Redis read for the wallet gauges took.",
            ),
        )

    def collect(self) -> Iterator[Metric]:
        snap, took = self._snapshot()
        f = self._families()
        f.success.add_metric([], 1.0 if snap is not None else 0.0)
        f.duration.add_metric([], took)
        if snap is not None:
            f.open_res.add_metric([], float(snap.open_reservations))
            f.overdue.add_metric([], float(snap.overdue_reservations))
            window = snap.burn_window
            for n, (wid, w) in enumerate(sorted(snap.wallets.items())):
                if n >= MAX_WALLETS:
                    log.warning("more than %d wallets: the rest are not exported", MAX_WALLETS)
                    break
                try:
                    scope, owner = parse_wallet_id(wid)
                except InvalidInput:
                    log.debug("skipping a malformed wallet id in the wallet set")
                    continue  # not a wallet id we made: never export it as a label
                lv = [scope, wid, owner if scope == "team" else ""]
                f.balance.add_metric(lv, _units(w["balance"]))
                f.reserved.add_metric(lv, _units(w["reserved"]))
                f.allocated.add_metric(lv, _units(w["allocated_total"]))
                f.spent.add_metric(lv, _units(w["spent_total"]))
                current = wallet_status(w["balance"], w["allocated_total"], self._ratio)
                for s in STATUSES:
                    f.status.add_metric([*lv, s], 1.0 if s == current else 0.0)
                f.burn_rate.add_metric(lv, window.per_day(wid) / MICROS_PER_UNIT)
                seconds = window.depletion_seconds(wid, w["balance"])
                if seconds is not None:
                    f.depletion.add_metric(lv, seconds)
        yield from f
        if self._usage is not None:
            usage = usage_families()
            if snap is not None:
                try:
                    add_usage(usage, usage_totals(snap.usage, self._usage))
                except Exception:  # a scrape must never fail because of us
                    m.STORE_ERRORS.labels("scrape").inc()
                    log.exception("usage counters: could not read the usage hash")
                    usage = usage_families()
            yield from usage


__all__ = ["STATUSES", "WalletCollector"]
