"""The Prometheus endpoint (:9464/metrics by default) and the observability background work.

`start_metrics_server(app, port)` is called by `serve_forever` from inside the server's event loop.
It registers the scrape-time wallet collector and the usage counters, starts the ledger consumer
(usage counters, burn buckets, alerts) on the running loop, and serves /metrics on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from keeptrusts_authz.alerts.engine import AlertEngine
from keeptrusts_authz.alerts.webhook import WebhookDelivery
from keeptrusts_authz.metrics.usage import LedgerConsumer, UsageCounters, UsageLabels
from keeptrusts_authz.metrics.wallets import WalletCollector
from keeptrusts_authz.store.observability import ObservabilityStore, WalletSnapshotReader

if TYPE_CHECKING:
    from keeptrusts_authz.config.models import Config
    from keeptrusts_authz.pricing import PriceTable
    from keeptrusts_authz.server import App

log = logging.getLogger(__name__)


@dataclass
class Observability:
    """Everything `start_metrics_server` set up, so tests and shutdown can reach it."""

    registry: CollectorRegistry
    reader: WalletSnapshotReader
    collector: WalletCollector
    store: ObservabilityStore
    counters: UsageCounters
    alerts: AlertEngine
    consumer: LedgerConsumer
    webhook: WebhookDelivery | None
    http: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.consumer.close()
        await self.alerts.close()
        for c in (self.collector, self.counters):
            with contextlib.suppress(KeyError):
                self.registry.unregister(c)
        if self.http is not None:
            server, thread = self.http
            server.shutdown()
            server.server_close()
            thread.join(5)
        await self.store.close()
        self.reader.close()


def build_observability(
    cfg: Config,
    prices: PriceTable | None,
    *,
    registry: CollectorRegistry = REGISTRY,
    scrape_ttl: float = 1.0,
    consumer_interval: float = 0.5,
) -> Observability:
    """Build (and register on `registry`) the collectors; nothing runs until `start`."""
    org = cfg.organization.id
    reader = WalletSnapshotReader.from_settings(cfg.redis, org)
    collector = WalletCollector(reader.read, cfg.enforcement.low_balance_ratio, ttl=scrape_ttl)
    counters = UsageCounters(UsageLabels.from_config(cfg, prices))
    store = ObservabilityStore.from_settings(cfg.redis, org)
    webhook = WebhookDelivery(cfg.alerts.webhook_url) if cfg.alerts.webhook_url else None
    alerts = AlertEngine(store, cfg, webhook)
    consumer = LedgerConsumer(store, counters, alerts, interval=consumer_interval)
    registry.register(collector)
    registry.register(counters)
    return Observability(registry, reader, collector, store, counters, alerts, consumer, webhook)


def start_metrics_server(app: App, port: int, host: str = "0.0.0.0") -> Observability:
    previous = app.extras.get("observability")
    if isinstance(previous, Observability):
        for c in (previous.collector, previous.counters):
            with contextlib.suppress(KeyError):
                previous.registry.unregister(c)
    obs = build_observability(app.config, app.prices)
    try:
        obs.http = start_http_server(port, addr=host, registry=obs.registry)
    except OSError:
        for c in (obs.collector, obs.counters):
            obs.registry.unregister(c)
        obs.reader.close()
        raise
    app.extras["observability"] = obs
    app.extras["alerts"] = obs.alerts  # the Settler's after-batch hook may use it
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        log.warning("no running event loop: ledger consumer (usage counters, alerts) not started")
    else:
        obs.consumer.start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return obs


__all__ = ["Observability", "build_observability", "start_metrics_server"]
