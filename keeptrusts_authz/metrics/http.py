"""The Prometheus endpoint (:9464/metrics by default) and the observability background work.

`start_metrics_server(app, port)` is called by `serve_forever` from inside the server's event loop.
It registers the scrape-time collector (wallet gauges, burn-based depletion and the usage counters
that settle.lua/expire.lua keep in Redis), hooks the alert engine to the Settler's batches, starts
the periodic alert sweep on the running loop, and serves /metrics on a thread. Nothing here reads
the ledger: the hot path pays nothing for observability in this process.
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
from keeptrusts_authz.metrics.usage import UsageLabels
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
    alerts: AlertEngine
    webhook: WebhookDelivery | None
    http: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.alerts.close()
        with contextlib.suppress(KeyError):
            self.registry.unregister(self.collector)
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
) -> Observability:
    """Build (and register on `registry`) the collector; nothing runs until started."""
    org = cfg.organization.id
    reader = WalletSnapshotReader.from_settings(cfg.redis, org)
    collector = WalletCollector(
        reader.read,
        cfg.enforcement.low_balance_ratio,
        ttl=scrape_ttl,
        usage=UsageLabels.from_config(cfg, prices),
    )
    store = ObservabilityStore.from_settings(cfg.redis, org)
    webhook = WebhookDelivery(cfg.alerts.webhook_url) if cfg.alerts.webhook_url else None
    alerts = AlertEngine(store, cfg, webhook)
    registry.register(collector)
    return Observability(registry, reader, collector, store, alerts, webhook)


def start_metrics_server(app: App, port: int, host: str = "0.0.0.0") -> Observability:
    previous = app.extras.get("observability")
    if isinstance(previous, Observability):
        with contextlib.suppress(KeyError):
            previous.registry.unregister(previous.collector)
    obs = build_observability(app.config, app.prices)
    try:
        obs.http = start_http_server(port, addr=host, registry=obs.registry)
    except OSError:
        obs.registry.unregister(obs.collector)
        obs.reader.close()
        raise
    app.extras["observability"] = obs
    app.extras["alerts"] = obs.alerts
    settler = getattr(app, "settler", None)
    if settler is not None:
        # Evaluate the wallets each settle batch charged (only schedules: never slows a batch).
        settler.set_after_settle(obs.alerts.after_settle)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        log.warning("no running event loop: the periodic alert sweep is not started")
    else:
        obs.alerts.start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return obs


__all__ = ["Observability", "build_observability", "start_metrics_server"]
