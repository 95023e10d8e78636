"""The one place that wires config -> store -> domain -> servicers, and runs the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.gateway.accesslog_servicer import AccessLogServicer
from keeptrusts_authz.gateway.admission import Admission
from keeptrusts_authz.gateway.api_keys import KeyRing
from keeptrusts_authz.gateway.authz_servicer import AuthorizationServicer
from keeptrusts_authz.gateway.settler import Settler, Sweeper
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService

log = logging.getLogger(__name__)

# Services that register on the same gRPC server besides the gateway's (e.g. the wallet admin API).
ExtraRegistrar = Callable[["App", grpc.aio.Server], list[str]]


@dataclass
class App:
    """Everything one service process holds; built by `build_app`, run by `run_server`."""

    config: Config
    store: RedisWalletStore
    wallets: WalletService
    prices: PriceTable
    admission: Admission
    settler: Settler
    sweeper: Sweeper
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.admission.drain()
        await self.settler.close()
        await self.sweeper.close()
        # Extras that hold connections or tasks: the observability loop and the ticket store.
        for name in ("observability", "tickets"):
            extra = self.extras.get(name)
            if extra is not None:
                await extra.close()
        await self.store.close()


def build_app(cfg: Config) -> App:
    store = RedisWalletStore(connect(cfg.redis), cfg.organization.id)
    wallets = WalletService(store, cfg)
    prices = PriceTable.from_config(cfg)
    admission = Admission(cfg, KeyRing.from_config(cfg), prices, wallets)
    settler = Settler(wallets)
    sweeper = Sweeper(wallets, cfg.enforcement.sweep_interval_seconds)
    return App(cfg, store, wallets, prices, admission, settler, sweeper)


@dataclass
class RunningServer:
    app: App
    server: grpc.aio.Server
    health: HealthServicer
    port: int

    async def stop(self, grace: float | None = None) -> None:
        """Graceful: stop accepting, let in-flight Checks finish, flush pending settles."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.app.config.shutdown_grace_seconds() if grace is None else grace)
        await self.app.close()


_registrars: list[ExtraRegistrar] = []


def register_extra_service(registrar: ExtraRegistrar) -> None:
    """Let another module (the wallet admin API) add its servicer to the same server."""
    _registrars.append(registrar)


async def start_server(
    app: App, *, host: str | None = None, port: int | None = None
) -> RunningServer:
    cfg = app.config
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
        AuthorizationServicer(app.admission), server
    )
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(
        AccessLogServicer(app.prices, app.settler), server
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [
        external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
        als_pb2.DESCRIPTOR.services_by_name["AccessLogService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    ]
    for registrar in _registrars:
        names.extend(registrar(app, server))
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    bind_host = cfg.server.host if host is None else host
    bound = server.add_insecure_port(
        f"{bind_host}:{cfg.server.grpc_port if port is None else port}"
    )
    await server.start()
    app.settler.start()
    app.sweeper.start()
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("keeptrusts-authz serving gRPC on %s:%d", bind_host, bound)
    return RunningServer(app, server, health, bound)


async def serve_forever(
    cfg: Config, *, port: int | None = None, metrics_port: int | None = None
) -> None:
    from keeptrusts_authz.metrics.http import start_metrics_server

    app = build_app(cfg)
    running = await start_server(app, port=port)
    mport = cfg.server.metrics_port if metrics_port is None else metrics_port
    start_metrics_server(app, mport)
    # Start-up objects (config, generated protobuf modules, scripts) live as long as the process:
    # keep them out of the collector's way so full collections do not stall the event loop.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight requests and pending settlements")
    await running.stop()


# The wallet admin API (keeptrusts.wallet.v1.WalletService) joins the same gRPC server.
from keeptrusts_authz.api.registration import register_wallet_api  # noqa: E402

register_extra_service(register_wallet_api)
