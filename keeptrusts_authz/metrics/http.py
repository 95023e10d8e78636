"""The Prometheus endpoint (:9464/metrics by default).

`build_observability` registers the scrape-time collector (wallet gauges, burn-based depletion and
the usage counters that settle.lua/expire.lua keep in Redis) on a registry; `Observability.start`
serves that registry on a thread. Nothing here reads the ledger: the hot path pays nothing for
observability in this process. The alert engine is built and run by the composition root
(`keeptrusts_authz.server`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.metrics.usage import UsageLabels
from keeptrusts_authz.metrics.wallets import WalletCollector
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.store.observability import WalletSnapshotReader

log = logging.getLogger(__name__)


@dataclass
class Observability:
    """The scrape collector on its registry, and the HTTP endpoint once started."""

    registry: CollectorRegistry
    collector: WalletCollector
    http: tuple[WSGIServer, threading.Thread] | None = None

    def start(self, port: int, host: str) -> None:
        """Serve the registry on http://host:port/metrics (a daemon thread)."""
        self.http = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def close(self) -> None:
        with contextlib.suppress(KeyError):
            self.registry.unregister(self.collector)
        if self.http is not None:
            server, thread = self.http
            server.shutdown()
            server.server_close()
            thread.join(5)
            self.http = None


def build_observability(
    cfg: Config,
    prices: PriceTable | None,
    reader: WalletSnapshotReader,
    *,
    registry: CollectorRegistry = REGISTRY,
    scrape_ttl: float = 1.0,
) -> Observability:
    """Build the collector over `reader` and register it on `registry`; nothing is served yet."""
    collector = WalletCollector(
        reader.read,
        cfg.enforcement.low_balance_ratio,
        ttl=scrape_ttl,
        usage=UsageLabels.from_config(cfg, prices),
    )
    registry.register(collector)
    return Observability(registry, collector)


__all__ = ["Observability", "build_observability"]
