"""`keeptrusts-authz serve`: the gRPC service (ext_authz, access log, wallet API, health).

`serve --workers N` (default `auto`: the CPU quota, see `cpu_quota`) runs N worker processes on
the same gRPC port (SO_REUSEPORT, `server.reuse_port`; the kernel spreads Envoy's connections
over them) under a supervisor that:
- serves /metrics once for all of them: prometheus-client multiprocess mode
  (PROMETHEUS_MULTIPROC_DIR, a fresh directory unless set), plus the scrape-time collector that
  reads the wallets from Redis, once (server.build_supervisor_metrics);
- forwards SIGTERM/SIGINT to every worker, each of which drains as a single process does
  (NOT_SERVING, in-flight Checks and access-log streams, pending settles), and waits for them;
- restarts a worker that dies (after 1 s), marking it dead for the live gauges.
Background work with N processes is what it already is with N replicas (docs/ARCHITECTURE.md,
"serve --workers"): every worker runs it, each one is locked or idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keeptrusts_authz.cli.output import print_config_errors
from keeptrusts_authz.config import Config, ConfigError, load_config
from keeptrusts_authz.config.loader import SIGNING_ENV

log = logging.getLogger(__name__)

WORKER_ENV = "KEEPTRUSTS_WORKER_READY_FILE"  # set by the supervisor in each worker's environment
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: the cgroup CPU limit (v2 cpu.max, v1 cfs quota/period), rounded
    up, capped by the CPU affinity mask; at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = float(cpus or 1)
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            limit = min(limit, int(quota) / int(period))
    except (OSError, ValueError):
        try:
            quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
            period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
            if quota_us > 0 and period_us > 0:
                limit = min(limit, quota_us / period_us)
        except (OSError, ValueError):
            pass
    return max(1, math.ceil(limit))


def _workers(value: str) -> int | None:
    if value == "auto":
        return None  # decided once the config is read (_serve)
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--workers: a number of processes or 'auto'") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError("--workers: between 1 and 64")
    return n


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print_config_errors(exc)
        return 2
    if args.workers is None:  # auto: the CPU quota; one process on a Unix socket
        args.workers = 1 if cfg.server.uds_path is not None else cpu_quota()
    if args.workers > 1 and cfg.server.uds_path is not None:
        print(
            "keeptrusts-authz: serve --workers N needs a TCP port (server.uds_path is one socket "
            "that only one process can serve)",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1 and os.environ.get(WORKER_ENV) is None:
        return _supervise(cfg, args)
    from keeptrusts_authz.server import serve_forever

    ready_file = os.environ.get(WORKER_ENV)

    def ready() -> None:
        assert ready_file is not None
        Path(ready_file).write_text(str(os.getpid()), encoding="utf-8")

    try:
        asyncio.run(
            serve_forever(
                cfg,
                port=args.port,
                metrics_port=args.metrics_port,
                on_ready=ready if ready_file else None,
            )
        )
    except ConfigError as exc:  # e.g. a price table that does not load
        print_config_errors(exc)
        return 2
    except KeyError as exc:  # e.g. an api_key_env variable that is not set
        print(f"keeptrusts-authz: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- the supervisor


class _Workers:
    def __init__(self, cfg: Config, args: argparse.Namespace, multiproc_dir: str) -> None:
        self.cfg = cfg
        self.args = args
        self.dir = multiproc_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.env: dict[str, str] = {}  # added to every worker's environment

    def _ready_file(self, index: int) -> Path:
        return Path(self.dir) / f"ready-{index}"

    def spawn(self, index: int) -> None:
        self._ready_file(index).unlink(missing_ok=True)
        env = {
            **os.environ,
            **self.env,
            MULTIPROC_ENV: self.dir,
            WORKER_ENV: str(self._ready_file(index)),
        }
        argv = [sys.executable, "-m", "keeptrusts_authz.cli.main", "serve", "--workers", "1"]
        argv += ["--log-level", self.args.log_level]
        if self.args.config:
            argv += ["--config", self.args.config]
        argv += ["--port", str(self.port)]
        self.procs[index] = subprocess.Popen(argv, env=env)

    @property
    def port(self) -> int:
        return self.cfg.server.grpc_port if self.args.port is None else int(self.args.port)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ready_file(i).exists() for i in self.procs):
                return True
            if any(p.poll() is not None for p in self.procs.values()):
                return False
            time.sleep(0.05)
        return False

    def reap(self) -> None:
        """Restart a worker that died (not during shutdown)."""
        from prometheus_client import multiprocess

        for index, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None or self.stopping:
                continue
            log.error("worker %d (pid %d) exited with %s; restarting it", index, proc.pid, code)
            multiprocess.mark_process_dead(proc.pid, self.dir)  # type: ignore[no-untyped-call]
            time.sleep(1.0)
            if not self.stopping:
                self.spawn(index)

    def stop(self, sig: int, timeout: float) -> int:
        self.stopping = True
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        worst = 0
        for proc in self.procs.values():
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %.0fs; killing it", proc.pid, timeout)
                proc.kill()
                code = proc.wait()
            worst = worst or (code if code not in (0, -signal.SIGTERM, -signal.SIGINT) else 0)
        return worst


# The environment override of server.signing.key_file (config.loader owns the name).
SIGNING_KEY_ENV = next(env for env, field in SIGNING_ENV.items() if field == "key_file")


def _write_worker_key(directory: Path) -> str:
    """A random signing key shared by the supervisor's workers, 0600 in a 0700 directory."""
    directory.chmod(0o700)
    path = directory / "signing-key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_hex(32))
    path.chmod(0o600)
    return str(path)


def _supervise(cfg: Config, args: argparse.Namespace) -> int:
    if not cfg.server.reuse_port:
        print("keeptrusts-authz: serve --workers N needs server.reuse_port: true", file=sys.stderr)
        return 2
    own_dir = os.environ.get(MULTIPROC_ENV) is None
    multiproc_dir = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="kt-metrics-")
    for stale in Path(multiproc_dir).glob("*.db"):  # values of an earlier run are not ours
        stale.unlink()
    workers = _Workers(cfg, args, multiproc_dir)
    if workers.port == 0:
        print("keeptrusts-authz: serve --workers N needs a fixed --port", file=sys.stderr)
        return 2
    key_dir = None
    if cfg.server.signing.key_file is None:
        # Without a configured key each process would sign with a random key of its own, and an
        # access-log entry reaching another worker than its Check would be refused (the request
        # then expires at its estimate). So the supervisor makes one key for all its workers
        # (and their restarts); it still dies with the supervisor, as the warning says.
        key_dir = tempfile.mkdtemp(prefix="kt-signing-")
        workers.env[SIGNING_KEY_ENV] = _write_worker_key(Path(key_dir))
        log.warning(
            "server.signing.key_file is not set: the %d workers share a random key that ends "
            "with this process; reservations open when it restarts expire at their estimate. "
            "Set server.signing.key_file (one key for every replica) in production.",
            args.workers,
        )
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        got.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    observability = None
    try:
        for index in range(args.workers):
            workers.spawn(index)
        if not workers.wait_ready(timeout=60):
            log.error("a worker did not start")
            workers.stop(signal.SIGTERM, 10)
            return 1
        from keeptrusts_authz.server import build_supervisor_metrics

        observability = build_supervisor_metrics(cfg, multiproc_dir)
        metrics_port = cfg.server.metrics_port if args.metrics_port is None else args.metrics_port
        observability.start(metrics_port, cfg.server.host)
        log.info("serving with %d workers on port %d", args.workers, workers.port)
        while not got:
            workers.reap()
            time.sleep(0.2)
        grace = cfg.shutdown_grace_seconds() + cfg.server.drain_seconds + 10
        return workers.stop(got[0], grace)
    finally:
        if observability is not None:
            asyncio.run(observability.close())
        if own_dir:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
        if key_dir is not None:
            shutil.rmtree(key_dir, ignore_errors=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gRPC ext_authz / access-log / wallet API server")
    p.add_argument("--config", help="config file (default: $KEEPTRUSTS_CONFIG)")
    p.add_argument("--port", type=int, help="gRPC port (default: server.grpc_port)")
    p.add_argument(
        "--metrics-port", type=int, help="Prometheus port (default: server.metrics_port)"
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="worker processes on the gRPC port (SO_REUSEPORT); default auto: the CPU quota "
        "(1 with server.uds_path)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)
