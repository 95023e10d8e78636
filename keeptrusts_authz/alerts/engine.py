"""Threshold crossings and status changes -> events, exactly once per crossing per period.

Two kinds of alert, each saying which one it is (`alert` in the payload, docs/alert-webhook.md):

- spend threshold (`type` threshold): the wallet's spend reaches `t` % of its funding
  (`enforcement.alert_thresholds`; spent_total * 100 >= t * funded_total, funded_total being the
  money ever put in, wallets.models.FUNDED_FIELD). Only spending raises that ratio: a reclaim or a
  transfer out lowers the balance and the net allocation but neither spent_total nor funded_total,
  so it never fires a spend alert;
- period spend threshold (`type` threshold, measure `period_spent / period_allocation`): for a
  wallet with a budget (config `budgets[]`), the thresholds are on what it spent in its current
  budget period against what the period started with (carried in + allocation, the period
  state applied by periods/budgets.py), deduplicated in that period's id (periods/calendar.py,
  e.g. `2026-W49`, `2027-Q1`): a new period re-arms them, and a reclaim or transfer changes
  neither figure. Until the current period's boundary is applied no period threshold fires;
- balance (`type` status, `alert` low_balance / depleted): the wallet's status (the one rule of
  wallets.models.wallet_status: balance under `low_balance_ratio` of allocated_total, or <= 0)
  becomes `low` or `depleted`, whatever lowered the balance (spend, reclaim, transfer).

Each yields an event. The dedupe key
`<wallet>|threshold|<t>` or `<wallet>|status|<status>` is claimed with HSETNX in the period's
`kt:{org}:alerts:<yyyy-mm>` hash and the event is XADDed to `kt:{org}:events` in the same Lua
script, so across replicas and retries exactly one event exists per crossing per month. Only the
replica that created an event delivers it to the webhook.

What gets evaluated, never on the Check or settle path (both only schedule work here):

- the wallets of each settle batch (`after_settle`, called by the Settler): coalesced, at most one
  evaluation per `min_interval` seconds, in a background task;
- every wallet, every `alerts.sweep_interval_seconds` (default 10 s; `start`): catches crossings
  caused by expiries and admin moves (reclaim, transfer), and anything missed while Redis was down.

A replica remembers the dedupe fields it saw recorded this period and skips their script call (a
recorded field stays recorded for the period), so a wallet that stays past a threshold costs one
HGETALL per evaluation, not one script call per condition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from prometheus_client import Counter

from keeptrusts_authz.background import stop_task
from keeptrusts_authz.errors import InvalidInput, StoreUnavailable
from keeptrusts_authz.metrics import registry as m
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.periods.budgets import BudgetStatus, PeriodRunner
from keeptrusts_authz.store.observability import ObservabilityStore
from keeptrusts_authz.wallets.models import FUNDED_FIELD, parse_wallet_id, wallet_status

if TYPE_CHECKING:
    from keeptrusts_authz.alerts.webhook import WebhookDelivery
    from keeptrusts_authz.config.models import Config

log = logging.getLogger(__name__)

MAX_REMEMBERED = 200_000  # dedupe fields a replica remembers per period before starting over

ALERT_EVENTS = Counter(
    "keeptrusts_alert_events",
    "Alert events created by this replica (after dedupe), by type (threshold, status).",
    ["type"],
)


@dataclass(frozen=True)
class AlertEvent:
    id: str
    type: str  # threshold | status
    wallet: str
    scope: str
    period: str
    threshold: int | None
    status: str
    balance: int
    allocated_total: int
    spent_total: int
    ts_ms: int
    reserved: int = 0
    funded_total: int = 0
    # Budget wallets' period thresholds: spend in the period and what the period started with.
    period_spent: int | None = None
    period_allocation: int | None = None

    @property
    def alert(self) -> str:
        """spend_threshold | low_balance | depleted: what the event is about, by name."""
        return (
            "spend_threshold"
            if self.type == "threshold"
            else ("depleted" if self.status == "depleted" else "low_balance")
        )

    def payload(self, org: str, currency: str, low_balance_ratio: Decimal) -> dict[str, object]:
        """JSON body of the webhook (amounts as exact decimal strings; docs/alert-webhook.md)."""
        funding = funding_of(self.allocated_total, self.funded_total)
        if self.type == "threshold" and self.period_allocation is not None:
            spent = self.period_spent or 0
            crossed = {
                "measure": "period_spent / period_allocation",
                "limit_percent": f"{self.threshold}.00",
                "value_percent": _percent(spent, self.period_allocation),
            }
            summary = (
                f"{self.wallet} has spent {format_micros(spent)} {currency} in budget period "
                f"{self.period}, {crossed['value_percent']}% of the "
                f"{format_micros(self.period_allocation)} {currency} the period started with "
                f"(alert at {self.threshold}%)"
            )
        elif self.type == "threshold":
            crossed = {
                "measure": "spent_total / funded_total",
                "limit_percent": f"{self.threshold}.00",
                "value_percent": _percent(self.spent_total, funding),
            }
            summary = (
                f"{self.wallet} has spent {format_micros(self.spent_total)} {currency}, "
                f"{crossed['value_percent']}% of the {format_micros(funding)} {currency} put "
                f"into it (alert at {self.threshold}%)"
            )
        else:
            crossed = {
                "measure": "balance / allocated_total",
                "limit_percent": _percent_of_ratio(low_balance_ratio)
                if self.status == "low"
                else "0.00",
                "value_percent": _percent(self.balance, self.allocated_total),
            }
            summary = (
                f"{self.wallet} balance is {self.status}: {format_micros(self.balance)} "
                f"{currency} available of a {format_micros(self.allocated_total)} {currency} "
                f"allocation (low under {crossed['limit_percent']}%)"
                if self.status == "low"
                else f"{self.wallet} is depleted: {format_micros(self.balance)} {currency} "
                f"available"
            )
        scope, owner = parse_wallet_id(self.wallet)
        return {
            "event_id": self.id,
            "type": self.type,
            "alert": self.alert,
            "organization": org,
            "wallet": self.wallet,
            "scope": self.scope,
            "team": owner if scope == "team" else None,
            "user": owner if scope == "user" else None,
            "period": self.period,
            "threshold_percent": self.threshold,
            "status": self.status,
            "crossed": crossed,
            "balance": format_micros(self.balance),
            "reserved": format_micros(self.reserved),
            "allocated_total": format_micros(self.allocated_total),
            "funded_total": format_micros(funding),
            "spent_total": format_micros(self.spent_total),
            "period_spent": None if self.period_spent is None else format_micros(self.period_spent),
            "period_allocation": None
            if self.period_allocation is None
            else format_micros(self.period_allocation),
            "currency": currency,
            "ts_ms": self.ts_ms,
            "summary": summary,
        }


def funding_of(allocated_total: int, funded_total: int) -> int:
    """The spend thresholds' denominator: funded_total (allocated_total for wallets funded before
    the field existed; allocated_total <= funded_total whenever funded_total is kept)."""
    return max(allocated_total, funded_total)


def _percent(part: int, whole: int) -> str:
    """part / whole in percent, two decimals (exact: integer micros in, Decimal at the edge)."""
    if whole <= 0:
        return "0.00"
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01")))


def _percent_of_ratio(ratio: Decimal) -> str:
    return str((ratio * 100).quantize(Decimal("0.01")))


def period_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


class AlertEngine:
    def __init__(
        self,
        store: ObservabilityStore,
        config: Config,
        webhook: WebhookDelivery | None = None,
        *,
        periods: PeriodRunner | None = None,
        clock: Callable[[], float] = time.time,
        sweep_interval: float | None = None,
        min_interval: float = 1.0,
        sweep_chunk: int = 500,
    ) -> None:
        self._store = store
        self._periods = periods if periods is not None and periods.rules else None
        self._config = config
        self._webhook = webhook
        self._clock = clock
        self._thresholds = sorted(set(config.enforcement.alert_thresholds))
        self._ratio = config.enforcement.low_balance_ratio
        self._sweep_interval = (
            config.alerts.sweep_interval_seconds if sweep_interval is None else sweep_interval
        )
        self._min_interval = min_interval
        self._sweep_chunk = sweep_chunk
        self._pending: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._closed = False
        self._recorded: set[str] = set()  # dedupe fields known to be recorded in `_period`
        self._period = ""

    # -- the hook for the Settler (never blocks: evaluation runs in a background task) ----------

    async def after_settle(self, wallet_ids: Iterable[str]) -> None:
        """Schedule an evaluation of these wallets; returns at once (no I/O)."""
        self.notify(wallet_ids)

    def notify(self, wallet_ids: Iterable[str]) -> None:
        self._pending.update(w for w in wallet_ids if w)
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="keeptrusts-alerts"
            )
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            ids, self._pending = self._pending, set()
            try:
                await self.evaluate(ids)
            except StoreUnavailable as exc:
                # Crossings are state, not edges: the next settle or sweep re-detects them. A
                # failover (ClusterDown, TryAgain, a dropped connection) is expected: a warning.
                m.STORE_ERRORS.labels("alerts").inc()
                log.warning("alert evaluation skipped: %s", exc)
            except Exception:
                log.exception("alert evaluation failed")
            # Batches settled meanwhile accumulate in `_pending`: one evaluation for all of them.
            await asyncio.sleep(self._min_interval)

    # -- the periodic sweep over every wallet -----------------------------------------------------

    def start(self) -> None:
        """Start the periodic sweep on the running loop (safe on every replica: events dedupe)."""
        if self._sweep_task is None:
            self._sweep_task = asyncio.get_running_loop().create_task(
                self._sweep_loop(), name="keeptrusts-alerts-sweep"
            )

    async def sweep_once(self) -> list[AlertEvent]:
        """Evaluate every wallet of the org (in chunks of `sweep_chunk` wallets per round trip)."""
        ids = await self._store.wallet_ids()
        events: list[AlertEvent] = []
        for i in range(0, len(ids), self._sweep_chunk):
            events += await self.evaluate(ids[i : i + self._sweep_chunk])
        return events

    async def _sweep_loop(self) -> None:
        while not self._closed:
            try:
                await self.sweep_once()
            except StoreUnavailable as exc:
                m.STORE_ERRORS.labels("alerts").inc()
                log.warning("alert sweep skipped: %s", exc)
            except Exception:
                log.exception("alert sweep failed")
            await asyncio.sleep(self._sweep_interval)

    async def close(self) -> None:
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        for task in (self._task, self._sweep_task):
            await stop_task(task)
        self._task = self._sweep_task = None
        if self._webhook is not None:
            await asyncio.to_thread(self._webhook.close)

    # -- evaluation -------------------------------------------------------------------------------

    def crossings(
        self, wallet_id: str, w: dict[str, int], budget: BudgetStatus | None = None
    ) -> list[tuple[str, int | None, str]]:
        """(type, threshold, status) of every condition that currently holds for the wallet; a
        budget wallet's spend thresholds are its current period's (module docstring)."""
        out: list[tuple[str, int | None, str]] = []
        status = wallet_status(w["balance"], w["allocated_total"], self._ratio)
        if budget is not None:
            funding, spent = budget.funded, budget.spent  # 0 until the period is applied
        else:
            funding = funding_of(w["allocated_total"], w.get(FUNDED_FIELD, 0))
            spent = w["spent_total"]
        if funding > 0:
            for t in self._thresholds:
                if spent * 100 >= t * funding:
                    out.append(("threshold", t, status))
        if status in ("low", "depleted"):
            out.append(("status", None, status))
        return out

    async def evaluate(self, wallet_ids: Iterable[str]) -> list[AlertEvent]:
        """Check the wallets now; create (and deliver) the events not yet seen this period."""
        wallets = await self._store.wallets(wallet_ids)
        now = self._clock()
        period = period_of(now)
        ts_ms = int(now * 1000)
        if period != self._period or len(self._recorded) > MAX_REMEMBERED:
            self._period, self._recorded = period, set()
        budgets: dict[str, BudgetStatus] = {}
        if self._periods is not None and any(r.wallet_id in wallets for r in self._periods.rules):
            at = datetime.fromtimestamp(now, UTC)
            budgets = {st.rule.wallet_id: st for st in await self._periods.status(at)}
        events: list[AlertEvent] = []
        for wid, w in sorted(wallets.items()):
            try:
                scope, _owner = parse_wallet_id(wid)
            except InvalidInput:
                log.debug("skipping a malformed wallet id")
                continue
            if scope == "org" and w["allocated_total"] <= 0:
                continue  # an org pool that was never credited is not news
            budget = budgets.get(wid)
            for kind, threshold, status in self.crossings(wid, w, budget):
                dedupe = f"{wid}|{kind}|{threshold if kind == 'threshold' else status}"
                # A budget wallet's spend thresholds live in its budget period (re-armed by the
                # next one); everything else in the UTC month.
                in_budget = budget is not None and kind == "threshold"
                event_period = budget.current.id if budget is not None and in_budget else period
                remembered = f"{event_period}|{dedupe}"
                if remembered in self._recorded:
                    continue  # already an event this period (ours or another replica's)
                fields = {
                    "type": kind,
                    "wallet": wid,
                    "scope": scope,
                    "period": event_period,
                    "threshold": "" if threshold is None else str(threshold),
                    "status": status,
                    "balance": str(w["balance"]),
                    "allocated_total": str(w["allocated_total"]),
                    "spent_total": str(w["spent_total"]),
                    "reserved": str(w["reserved"]),
                    FUNDED_FIELD: str(w.get(FUNDED_FIELD, 0)),
                    "ts_ms": str(ts_ms),
                }
                if budget is not None and in_budget:
                    fields["period_spent"] = str(budget.spent)
                    fields["period_allocation"] = str(budget.funded)
                event_id = await self._store.record_event(event_period, dedupe, fields)
                self._recorded.add(remembered)
                if event_id is None:
                    continue
                event = AlertEvent(
                    id=event_id,
                    type=kind,
                    wallet=wid,
                    scope=scope,
                    period=event_period,
                    threshold=threshold,
                    status=status,
                    balance=w["balance"],
                    allocated_total=w["allocated_total"],
                    spent_total=w["spent_total"],
                    ts_ms=ts_ms,
                    reserved=w["reserved"],
                    funded_total=w.get(FUNDED_FIELD, 0),
                    period_spent=budget.spent if budget is not None and in_budget else None,
                    period_allocation=budget.funded if budget is not None and in_budget else None,
                )
                events.append(event)
                ALERT_EVENTS.labels(kind).inc()
                log.info("alert %s: %s %s", event.id, wid, dedupe.split("|", 1)[1])
                if self._webhook is not None:
                    org = self._config.organization
                    self._webhook.submit(event.payload(org.id, org.currency, self._ratio))
        return events


__all__ = ["ALERT_EVENTS", "AlertEngine", "AlertEvent", "funding_of", "period_of"]
