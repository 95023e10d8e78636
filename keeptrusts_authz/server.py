"""The composition root: `build_app(cfg)` builds every component once, in order, and
`App.close` closes them in reverse order. `start_server` serves them on one gRPC server and starts
the background workers (settler, sweeper, alert sweep); `serve_forever` also starts the metrics
endpoint and waits for SIGTERM/SIGINT.

Only the `serve` CLI entry imports this module (an import-linter contract says so).

Redis connections: `open_redis` is the one place that opens clients for the process.
- `main` (asyncio): the wallet store, the ticket store and the observability store share it;
  the ticket events' pub/sub subscription takes its own dedicated connection from this client's
  pool (a subscribed connection cannot run other commands).
- `scrape` (synchronous): the Prometheus scrape runs on the metrics HTTP thread, outside the
  event loop, so it cannot use the asyncio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import signal
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry

from keeptrusts_authz.alerts.engine import AlertEngine
from keeptrusts_authz.alerts.webhook import WebhookDelivery
from keeptrusts_authz.api.auth import AdminAuth
from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from keeptrusts_authz.api.servicer import WalletApiServicer
from keeptrusts_authz.config.models import Config, RedisSettings, Server, ServerTls
from keeptrusts_authz.gateway.accesslog_servicer import AccessLogServicer
from keeptrusts_authz.gateway.admission import Admission
from keeptrusts_authz.gateway.api_keys import KeyRing
from keeptrusts_authz.gateway.authz_servicer import AuthorizationServicer
from keeptrusts_authz.gateway.settler import Settler, Sweeper
from keeptrusts_authz.gateway.signing import ReservationSigner, signer_from_config
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.archiver import Archiver
from keeptrusts_authz.ledger.journal import PostgresJournal
from keeptrusts_authz.metrics.http import Observability, build_observability
from keeptrusts_authz.metrics.registry import set_store_regressed
from keeptrusts_authz.periods.budgets import PeriodRunner, calendar_of, rules_of
from keeptrusts_authz.periods.worker import PeriodWorker
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.store.connection import AsyncClient, MasterWatch, connect, describe
from keeptrusts_authz.store.observability import (
    ObservabilityStore,
    SyncClient,
    WalletSnapshotReader,
    connect_sync,
)
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.store.tickets import RedisTicketStore
from keeptrusts_authz.store.topups import RedisTopUpStore
from keeptrusts_authz.wallets.holds import Holds
from keeptrusts_authz.wallets.restore import journal_keep_ms
from keeptrusts_authz.wallets.service import WalletService
from keeptrusts_authz.wallets.topups import TopUps

log = logging.getLogger(__name__)

WALLET_SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name


@dataclass
class RedisClients:
    """The process's Redis clients (see the module docstring for why there are two)."""

    main: AsyncClient
    scrape: SyncClient
    endpoint: str  # host:port for error messages, never credentials
    master_watch: MasterWatch  # sentinel: follows the current master (a no-op otherwise)

    async def close(self) -> None:
        await self.master_watch.close()
        # The stores close the client they were given too; closing again is a no-op.
        await self.main.aclose()
        self.scrape.close()


def open_redis(settings: RedisSettings) -> RedisClients:
    """Every Redis client of the process (no I/O until the first command)."""
    main = connect(settings)
    return RedisClients(main, connect_sync(settings), describe(settings), MasterWatch(main))


@dataclass
class App:
    """Everything one service process holds, built by `build_app` in field order."""

    config: Config
    redis: RedisClients
    store: RedisWalletStore
    tickets: RedisTicketStore
    observability_store: ObservabilityStore
    snapshots: WalletSnapshotReader
    prices: PriceTable
    wallets: WalletService
    holds: Holds
    alerts: AlertEngine
    settler: Settler
    sweeper: Sweeper
    periods: PeriodWorker
    signer: ReservationSigner
    admission: Admission
    wallet_api: WalletApiServicer
    observability: Observability
    # None without `ledger.postgres_url`: the ledger then lives in Redis only.
    archiver: Archiver | None = None
    journal: PostgresJournal | None = None  # the settlement journal (with PostgreSQL)

    async def close(self) -> None:
        """Reverse build order: the workers first, then the stores they write to."""
        if self.archiver is not None:
            await self.archiver.close()
        await self.observability.close()  # the metrics endpoint
        await self.admission.drain()
        await self.periods.close()
        await self.sweeper.close()
        await self.settler.close()
        if self.journal is not None:
            await self.journal.close()
        await self.alerts.close()
        await self.wallets.integrity.close()
        self.snapshots.close()
        await self.observability_store.close()
        await self.tickets.close()
        await self.store.close()
        await self.redis.close()


def build_app(cfg: Config, *, registry: CollectorRegistry = REGISTRY) -> App:
    """Build the process; nothing runs (no task, no socket) until `start_server`."""
    org = cfg.organization.id
    redis = open_redis(cfg.redis)
    store = RedisWalletStore(
        redis.main,
        org,
        endpoint=redis.endpoint,
        closed_ttl_seconds=cfg.enforcement.closed_reservation_ttl_seconds,
        master_watch=redis.master_watch,
    )
    tickets = RedisTicketStore(redis.main, org)
    observability_store = ObservabilityStore(redis.main, org, endpoint=redis.endpoint)
    snapshots = WalletSnapshotReader(redis.scrape, org, endpoint=redis.endpoint)
    prices = PriceTable.from_config(cfg)
    archive = ArchiveStore(cfg.ledger.postgres_url) if cfg.ledger.postgres_url else None
    # The archived high-water mark: a Redis behind it, or empty with history, is a lost store.
    wallets = WalletService(store, cfg, archive=archive, on_integrity=set_store_regressed)
    holds = Holds(wallets, tickets, cfg.enforcement.hold_timeout_seconds)
    webhook = WebhookDelivery(cfg.alerts.webhook_url) if cfg.alerts.webhook_url else None
    # Budget wallets' spend thresholds are per budget period (alerts/engine.py).
    alerts = AlertEngine(
        observability_store,
        cfg,
        webhook,
        periods=PeriodRunner(store, calendar_of(cfg), rules_of(cfg)),
    )
    # Each settle batch tells the alert engine the wallets it charged (it only schedules).
    # With PostgreSQL, every settle batch is journaled there before Redis (gateway/settler.py).
    journal = PostgresJournal(cfg.ledger.postgres_url) if cfg.ledger.postgres_url else None
    settler = Settler(wallets, after_settle=alerts.after_settle, journal=journal)
    sweeper = Sweeper(wallets, cfg.enforcement.sweep_interval_seconds)
    periods = PeriodWorker(
        PeriodRunner(store, calendar_of(cfg), rules_of(cfg), events=observability_store),
        cfg.budget_calendar.run_interval_seconds,
    )
    # One signer for the Check (signs) and the access log (verifies); the key is every replica's.
    signer = signer_from_config(cfg)
    admission = Admission(
        cfg, KeyRing.from_config(cfg), prices, wallets, holds=holds, signer=signer
    )
    # Team leads' top-up requests (they share the main client; nothing of their own to close).
    topups = TopUps(RedisTopUpStore(redis.main, org), cfg.team_ids(), cfg.organization.currency)
    wallet_api = WalletApiServicer(
        wallets, cfg, AdminAuth(cfg.admin.tokens), tickets, periods=periods.runner, topups=topups
    )
    observability = build_observability(cfg, prices, snapshots, registry=registry)
    archiver = None
    if cfg.ledger.postgres_url is not None:
        archiver = Archiver(
            redis.main,
            archive or ArchiveStore(cfg.ledger.postgres_url),
            org,
            tail_entries=cfg.ledger.redis_tail_entries,
            batch=cfg.ledger.archive_batch_entries,
            journal_keep_ms=journal_keep_ms(cfg.enforcement.reservation_ttl_seconds * 1000),
        )
    return App(
        cfg,
        redis,
        store,
        tickets,
        observability_store,
        snapshots,
        prices,
        wallets,
        holds,
        alerts,
        settler,
        sweeper,
        periods,
        signer,
        admission,
        wallet_api,
        observability,
        archiver,
        journal,
    )


@dataclass
class RunningServer:
    app: App
    server: grpc.aio.Server
    health: HealthServicer
    port: int
    # server.health_port: grpc.health.v1 alone, plaintext, for kubelet probes (None: not set).
    health_server: grpc.aio.Server | None = None
    access_log: AccessLogServicer | None = None

    async def stop(self, grace: float | None = None, *, drain: float = 0.0) -> None:
        """Graceful: report NOT_SERVING and keep serving for `drain` seconds (the gateway moves
        new Checks elsewhere), then stop accepting, let in-flight Checks and access-log streams
        finish, flush pending settles."""
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        grace = self.app.config.shutdown_grace_seconds() if grace is None else grace
        # stop() sends GOAWAY at once (Envoy opens new streams elsewhere); then the access-log
        # streams end after their next flush instead of being cancelled at the end of the grace.
        stopping = asyncio.ensure_future(self.server.stop(grace))
        await asyncio.sleep(0.05)
        if self.access_log is not None:
            self.access_log.close_streams()
        await stopping
        if self.health_server is not None:
            await self.health_server.stop(0)
        await self.app.close()


class TlsFiles:
    """`server.tls`'s files, re-read when they change (a cert-manager renewal swaps the Secret
    volume's files at once): gRPC asks `fetch` at the start of every new handshake, so new
    connections get the renewed certificate without a restart; open connections keep theirs.
    A pair that does not load or whose key does not match the certificate (a rotation caught
    half-way) is not taken: the last good one stays, and the failure is logged."""

    def __init__(self, tls: ServerTls) -> None:
        self._paths = (Path(tls.cert_file), Path(tls.key_file), Path(tls.client_ca_file))
        self._seen = self._signature()
        self.initial = self._load()  # start-up: an unreadable or mismatched pair fails loudly

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._paths:
            st = path.stat()  # follows the ..data symlink of a Secret volume
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert_path, key_path, ca_path = self._paths
        cert, key, ca = cert_path.read_bytes(), key_path.read_bytes(), ca_path.read_bytes()
        leaf = x509.load_pem_x509_certificate(cert).public_key()
        private = serialization.load_pem_private_key(key, password=None)
        if private.public_key().public_bytes(*_SPKI) != leaf.public_bytes(*_SPKI):
            raise ValueError(f"{key_path} is not the key of {cert_path}")
        x509.load_pem_x509_certificates(ca)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None: nothing changed, keep the current configuration."""
        try:
            seen = self._signature()
            if seen == self._seen:
                return None
            config = self._load()
        except (OSError, ValueError) as exc:
            log.warning("server.tls: not reloading the certificate files: %s", exc)
            return None
        self._seen = seen
        log.info("server.tls: certificate files changed, new connections use them")
        return config


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """mTLS: the service's certificate, and only clients whose certificate the CA signed
    (their name is checked by `ClientIdentity`). Re-read on change, see `TlsFiles`."""
    files = TlsFiles(tls)
    # grpc documents None from the fetcher as "keep the current configuration"; the stubs do
    # not allow it.
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=True,
    )


_IDENTITY_KEYS = ("x509_common_name", "x509_subject_alternative_name")


def client_names(context: grpc.aio.ServicerContext[Any, Any]) -> set[str]:
    """The subject CN and SANs of the verified client certificate (empty without one)."""
    auth = context.auth_context()
    return {v.decode("utf-8", "replace") for key in _IDENTITY_KEYS for v in auth.get(key, [])}


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class ClientIdentity(_ServerInterceptor):
    """`server.tls.allowed_client_names`: every RPC on the mTLS port (Check, access log, wallet
    API, health, reflection) first checks that the client certificate (already verified against
    `client_ca_file` by the handshake) names an allowed client; otherwise PERMISSION_DENIED
    before the servicer runs, so nothing is read or changed."""

    def __init__(self, allowed: list[str]) -> None:
        self._allowed = frozenset(allowed)

    async def _require(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        names = client_names(context)
        if names & self._allowed:
            return
        log.warning("mTLS: refused a client certificate naming %s", sorted(names) or "nothing")
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "client certificate not allowed")

    def _guard(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                await self._require(context)
                async for item in behaviour(request, context):
                    yield item

            return stream

        async def call(request: Any, context: Any) -> Any:
            await self._require(context)
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result

        return call

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return handler
        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        guarded = {k: self._guard(getattr(handler, k)) for k in kinds if getattr(handler, k)}
        # grpc's handlers are namedtuples (grpc.unary_unary_rpc_method_handler & co.)
        replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(**guarded)  # type: ignore[attr-defined]
        return replaced


def bind_grpc(
    server: grpc.aio.Server, settings: Server, *, host: str | None = None, port: int | None = None
) -> tuple[str, int]:
    """Bind the one gRPC port: a Unix socket (sidecar mode, no TCP at all), TCP with mTLS, or
    plaintext TCP (the config model allows that on loopback only, unless acknowledged).
    Returns (address for the log, bound TCP port or 0 for a socket)."""
    if settings.uds_path is not None:
        path = Path(settings.uds_path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of a previous process
        server.add_insecure_port(f"unix:{path}")  # its mode is set after start: secure_socket
        return f"unix:{path}", 0
    bind_host = settings.host if host is None else host
    target = f"{bind_host}:{settings.grpc_port if port is None else port}"
    if settings.tls is not None:
        bound = server.add_secure_port(target, server_credentials(settings.tls))
        return f"{target} (mTLS, client certificates required)", bound
    return target, server.add_insecure_port(target)


def secure_socket(path: Path) -> None:
    """Sidecar mode, once the server has started: owner and group only (the proxy's container
    shares the group, e.g. the pod's fsGroup), so whoever else can see the volume cannot connect.
    A socket that is missing, is not a socket, or does not end up 0660 fails start-up: the
    service must not run unreachable, or reachable by everyone, without saying so."""
    try:
        path.chmod(0o660)
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RuntimeError(f"server.uds_path {path}: the socket is missing after start") from None
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"server.uds_path {path}: not a socket")
    if stat.S_IMODE(mode) != 0o660:
        raise RuntimeError(f"server.uds_path {path}: mode {stat.S_IMODE(mode):o}, expected 660")


def health_only_server(cfg: Config, health: HealthServicer) -> grpc.aio.Server | None:
    """`server.health_port`: the same health answers on a plaintext port that serves nothing
    else (no Check, no access log, no wallet API), because kubelet gRPC probes cannot present a
    client certificate to the mTLS port."""
    if cfg.server.health_port is None:
        return None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"{cfg.server.host}:{cfg.server.health_port}")
    return server


async def start_server(
    app: App, *, host: str | None = None, port: int | None = None
) -> RunningServer:
    cfg = app.config
    tls = cfg.server.tls
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", int(cfg.server.reuse_port))],
        interceptors=[ClientIdentity(tls.allowed_client_names)] if tls is not None else None,
    )
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
        AuthorizationServicer(app.admission), server
    )
    access_log = AccessLogServicer(
        app.prices, app.settler, app.signer, cfg.gateway.access_log_flush_ms / 1000
    )
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(access_log, server)
    wallet_pb2_grpc.add_WalletServiceServicer_to_server(app.wallet_api, server)  # type: ignore[no-untyped-call]
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [
        external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
        als_pb2.DESCRIPTOR.services_by_name["AccessLogService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        WALLET_SERVICE_NAME,
    ]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    address, bound = bind_grpc(server, cfg.server, host=host, port=port)
    # Learn (or arm) the store's epoch before the first Check, then keep watching it.
    app.redis.master_watch.start()
    await app.wallets.integrity.check_quietly()
    app.wallets.integrity.start()
    await server.start()
    if cfg.server.uds_path is not None:
        try:
            secure_socket(Path(cfg.server.uds_path))
        except RuntimeError:
            await server.stop(0)
            await app.close()
            raise
    health_server = health_only_server(cfg, health)
    if health_server is not None:
        await health_server.start()
    app.settler.start()
    app.sweeper.start()
    app.alerts.start()
    app.periods.start()
    if app.archiver is not None:
        app.archiver.start(cfg.ledger.archive_interval_seconds)
        log.info(
            "ledger: archiving to PostgreSQL every %.1fs, keeping %d entries in Redis",
            cfg.ledger.archive_interval_seconds,
            cfg.ledger.redis_tail_entries,
        )
    else:
        log.info(
            "ledger: Redis only (ledger.postgres_url not set): nothing is archived and the audit "
            "cannot detect a lost Redis"
        )
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("keeptrusts-authz serving gRPC on %s", address)
    return RunningServer(app, server, health, bound, health_server, access_log)


async def serve_forever(
    cfg: Config,
    *,
    port: int | None = None,
    metrics_port: int | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """One service process until SIGTERM/SIGINT. A `serve --workers N` worker passes `on_ready`
    (called once it serves gRPC) and serves no metrics endpoint: its supervisor serves the
    metrics of every worker (cli/serve_cmd.py, `build_supervisor_metrics`)."""
    app = build_app(cfg)
    running = await start_server(app, port=port)
    if on_ready is None:
        app.observability.start(
            cfg.server.metrics_port if metrics_port is None else metrics_port, cfg.server.host
        )
    else:
        on_ready()
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
    log.info("shutting down: NOT_SERVING, draining in-flight requests and pending settlements")
    await running.stop(drain=cfg.server.drain_seconds)


def build_supervisor_metrics(cfg: Config, multiproc_dir: str) -> Observability:
    """The /metrics of `serve --workers N`, served by the supervisor: the workers' process metrics
    merged from their prometheus-client multiprocess files (counters and histograms summed, gauges
    per their multiprocess_mode, metrics/registry.py) plus the scrape-time collector that reads
    the org's wallets and usage from Redis, registered ONCE here (each worker reading it too
    would export the same org-wide totals N times)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    reader = WalletSnapshotReader(
        connect_sync(cfg.redis), cfg.organization.id, endpoint=describe(cfg.redis)
    )
    return build_observability(cfg, PriceTable.from_config(cfg), reader, registry=registry)


__all__ = [
    "App",
    "RedisClients",
    "RunningServer",
    "build_app",
    "build_supervisor_metrics",
    "open_redis",
    "start_server",
]
