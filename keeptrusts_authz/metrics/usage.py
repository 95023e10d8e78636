"""Spend and token counters by team, consumer group and model, fed from the ledger.

Every settle/expire entry in the ledger stream is delivered by a Redis consumer group to exactly
one replica, which adds it to its counters (and to the daily burn buckets that the depletion
projection reads). Summed over replicas, `keeptrusts_spend_total` therefore equals the ledger's
spend since the group was created, whatever replica settled the request or swept it, and each
replica only pays for the entries it was handed.

Sums are kept as integer micros and converted to currency units once, at scrape time, so a counter
equals the ledger sum exactly (up to the float conversion of the total).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.money import MICROS_PER_UNIT
from keeptrusts_authz.store.observability import ObservabilityStore, utc_day
from keeptrusts_authz.wallets.models import LedgerEntry

if TYPE_CHECKING:
    from keeptrusts_authz.config.models import Config
    from keeptrusts_authz.pricing import PriceTable

log = logging.getLogger(__name__)

SPEND_OPS = ("settle", "expire")
TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"), ("cached", "cached_tokens"))
OTHER = "other"
NONE = "none"
BACKFILL_MS = 7 * 86_400_000


def _nonneg_int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


class UsageLabels:
    """Bounded label values: teams and groups from the config, models from the price table.

    Anything else (a model the table does not know, a team removed from the config) becomes
    `other`; an empty value (a group funded by the org without a team) becomes `none`.
    """

    def __init__(
        self,
        teams: Iterable[str],
        groups: Iterable[str],
        model_name: Callable[[str], str | None],
    ) -> None:
        self._teams = frozenset(teams)
        self._groups = frozenset(groups)
        self._model_name = model_name
        self._models: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: Config, prices: PriceTable | None) -> UsageLabels:
        def model_name(model: str) -> str | None:
            if prices is None:
                return None
            hit = prices.lookup(model)
            return hit.name if hit is not None else None

        return cls(
            [g.wallet_team_id for g in cfg.consumer_groups if g.wallet_team_id],
            [g.name for g in cfg.consumer_groups],
            model_name,
        )

    @staticmethod
    def _bounded(value: str, allowed: frozenset[str]) -> str:
        if not value:
            return NONE
        return value if value in allowed else OTHER

    def team(self, value: str) -> str:
        return self._bounded(value, self._teams)

    def group(self, value: str) -> str:
        return self._bounded(value, self._groups)

    def model(self, value: str) -> str:
        if not value:
            return NONE
        hit = self._models.get(value)
        if hit is None:
            hit = self._model_name(value) or OTHER
            if len(self._models) < 10_000:
                self._models[value] = hit
        return hit


class UsageCounters(Collector):
    """`keeptrusts_spend_total` and `keeptrusts_tokens_total` (+ settled request counts)."""

    def __init__(self, labels: UsageLabels) -> None:
        self.labels = labels
        self._lock = threading.Lock()
        self._spend: dict[tuple[str, str, str, str], int] = {}
        self._tokens: dict[tuple[str, str, str, str], int] = {}
        self._requests: dict[tuple[str, str, str], int] = {}

    def record(self, entry: LedgerEntry) -> bool:
        """Count one ledger entry if it is a spend (settle or expire); True if counted."""
        if entry.op not in SPEND_OPS:
            return False
        f = entry.fields
        team = self.labels.team(f.get("team", ""))
        group = self.labels.group(f.get("group", ""))
        model = self.labels.model(f.get("model", ""))
        estimated = "true" if entry.op == "expire" or f.get("estimated") == "1" else "false"
        cost = _nonneg_int(f.get("cost"))
        with self._lock:
            key = (team, group, model, estimated)
            self._spend[key] = self._spend.get(key, 0) + cost
            rkey = (team, group, model)
            self._requests[rkey] = self._requests.get(rkey, 0) + 1
            for kind, field in TOKEN_KINDS:
                n = _nonneg_int(f.get(field))
                if n:
                    tkey = (team, group, model, kind)
                    self._tokens[tkey] = self._tokens.get(tkey, 0) + n
        return True

    def spend_micros(self) -> dict[tuple[str, str, str, str], int]:
        with self._lock:
            return dict(self._spend)

    def tokens(self) -> dict[tuple[str, str, str, str], int]:
        with self._lock:
            return dict(self._tokens)

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def _families(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "keeptrusts_spend",
            "Settled spend (currency units) by team, consumer group, model and whether the cost "
            "was estimated (no usage reported, or expired).",
            labels=["team", "consumer_group", "model", "estimated"],
        )
        yield CounterMetricFamily(
            "keeptrusts_tokens",
            "Tokens reported by providers for settled requests, by kind (input, output, cached).",
            labels=["team", "consumer_group", "model", "kind"],
        )
        yield CounterMetricFamily(
            "keeptrusts_settled_requests",
            "Requests settled or expired (ledger spend entries) by team, consumer group, model.",
            labels=["team", "consumer_group", "model"],
        )

    def collect(self) -> Iterator[Metric]:
        spend, tokens, requests = self._families()
        assert isinstance(spend, CounterMetricFamily)
        assert isinstance(tokens, CounterMetricFamily)
        assert isinstance(requests, CounterMetricFamily)
        with self._lock:
            for key, micros in sorted(self._spend.items()):
                spend.add_metric(list(key), micros / MICROS_PER_UNIT)
            for key, n in sorted(self._tokens.items()):
                tokens.add_metric(list(key), float(n))
            for rkey, n in sorted(self._requests.items()):
                requests.add_metric(list(rkey), float(n))
        yield from (spend, tokens, requests)


class WalletsTouched(Protocol):
    """What the ledger consumer tells about wallets whose balance moved (the alert engine)."""

    async def evaluate(self, wallet_ids: Iterable[str]) -> object: ...


def touched_wallets(entry: LedgerEntry) -> set[str]:
    ids = {entry.wallet, entry.fields.get("from", ""), entry.fields.get("to", "")}
    ids.discard("")
    return ids


class LedgerConsumer:
    """Background task: reads the ledger through the consumer group, feeds counters, burn
    buckets and the alert engine. Never on the Check path; Redis outages only delay it."""

    def __init__(
        self,
        store: ObservabilityStore,
        counters: UsageCounters,
        alerts: WalletsTouched | None = None,
        *,
        consumer: str | None = None,
        interval: float = 0.5,
        batch: int = 500,
    ) -> None:
        self._store = store
        self._counters = counters
        self._alerts = alerts
        self._consumer = consumer or f"{socket.gethostname()[:64]}-{os.getpid()}"
        self._interval = interval
        self._batch = batch
        self._group_ready = False
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> int:
        """Process whatever is new; the number of entries read."""
        if not self._group_ready:
            await self._store.ensure_ledger_group(int(time.time() * 1000) - BACKFILL_MS)
            self._group_ready = True
        total = 0
        while True:
            entries = await self._store.read_ledger_group(self._consumer, self._batch)
            if not entries:
                return total
            total += len(entries)
            burn: dict[str, dict[str, int]] = {}
            touched: set[str] = set()
            for entry in entries:
                touched |= touched_wallets(entry)
                if self._counters.record(entry):
                    cost = _nonneg_int(entry.fields.get("cost"))
                    if cost:
                        day = burn.setdefault(utc_day(entry.ts_ms / 1000), {})
                        day[entry.wallet] = day.get(entry.wallet, 0) + cost
            await self._store.add_burn(burn)
            if self._alerts is not None and touched:
                await self._alerts.evaluate(touched)
            if len(entries) < self._batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except StoreUnavailable:
                m.STORE_ERRORS.labels("ledger_consumer").inc()
            except Exception as exc:
                if "NOGROUP" in str(exc):  # the ledger stream was deleted (e.g. FLUSHALL)
                    self._group_ready = False
                else:
                    log.exception("ledger consumer pass failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="keeptrusts-ledger-consumer"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


__all__ = ["LedgerConsumer", "UsageCounters", "UsageLabels", "touched_wallets"]
