"""The whole gateway on loopback for end-to-end tests and the bench: the authz service (a real
`keeptrusts-authz serve` subprocess), the real Envoy rendered from the same config, the fake
provider as upstream, and a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from keeptrusts_authz.config import Config, load_config
from keeptrusts_authz.devcerts import DevPki, generate, tls_config
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService
from testing.envoy_harness import EnvoyProcess, loopback_gateway
from testing.redis_server import free_port, wait_port

T = TypeVar("T")

GROUPS: list[dict[str, Any]] = [
    {
        "name": "engineering",
        "api_key": "kt_cg_engineering_prod",
        "wallet_team_id": "team_engineering",
    },
    {
        "name": "support",
        "api_key": "kt_cg_support_prod",
        "wallet_team_id": "team_support",
        "on_insufficient": "warn",
    },
    {"name": "marketing", "api_key": "kt_cg_marketing_prod", "wallet_team_id": "team_marketing"},
    {
        "name": "legal",
        "api_key": "kt_cg_legal_prod",
        "wallet_team_id": "team_legal",
        "allowed_models": ["claude-*"],
    },
]


def stack_config(redis_url: str, provider_url: str, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "organization": {"id": "acme", "currency": "USD"},
        "consumer_groups": GROUPS,
        "cost_tracking": {"enabled": True, "wallet_enforcement": True},
        "enforcement": {"reservation_ttl_seconds": 600, "sweep_interval_seconds": 1},
        "providers": [
            {
                "name": "openai",
                "kind": "openai",
                "url": provider_url,
                "credential_env": "KT_TEST_OPENAI_KEY",
                # The fake provider's controls (x-fake-usage, -model, -status, ...).
                "allowed_request_headers": ["x-fake-*"],
                "models": ["gpt-*", "o*", "text-embedding-*"],
            },
            {
                "name": "anthropic",
                "kind": "anthropic",
                "url": provider_url,
                "credential_env": "KT_TEST_ANTHROPIC_KEY",
                # The fake provider's controls (x-fake-usage, -model, -status, ...).
                "allowed_request_headers": ["x-fake-*"],
                "models": ["claude-*"],
            },
        ],
        "redis": {"url": redis_url},
        "server": {
            "host": "127.0.0.1",
            "grpc_port": 0,
            "metrics_port": 0,
            "shutdown_grace_seconds": 2,
            # No health-check drain between SIGTERM and stop: one replica, nowhere else to go.
            "drain_seconds": 0,
        },
        "gateway": loopback_gateway(access_log_flush_ms=50),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    gateway = cfg["gateway"]
    first = gateway["authz_endpoints"][0]["port"] if "authz_endpoints" in gateway else None
    cfg["server"]["grpc_port"] = gateway.get("authz_port", first)
    cfg["server"]["metrics_port"] = cfg["server"]["metrics_port"] or free_port()
    return cfg


def write_provider_credentials(
    cfg_dict: dict[str, Any], values: dict[str, str], directory: Path
) -> None:
    """Give each provider that names a `credential_env` a `credential_file` holding its value,
    as `make run` does: Envoy reads the file, the service never sees the key."""
    for provider in cfg_dict.get("providers", []):
        value = values.get(provider.get("credential_env", ""))
        if value is None or provider.get("credential_file"):
            continue
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / provider["name"]
        path.write_text(value, encoding="utf-8")
        provider["credential_file"] = str(path)


def write_signing_key(cfg_dict: dict[str, Any], directory: Path) -> None:
    """One reservation signing key for every replica the stack starts (as `make run` and the k8s
    overlays give one), unless the config names its own."""
    server = cfg_dict.setdefault("server", {})
    signing = server.setdefault("signing", {})
    if signing.get("key_file"):
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "signing-key"
    path.write_text(os.urandom(32).hex(), encoding="utf-8")
    path.chmod(0o600)
    signing["key_file"] = str(path)


class Stack:
    PROVIDER_ENV = {
        "KT_TEST_OPENAI_KEY": "sk-test-openai-secret",
        "KT_TEST_ANTHROPIC_KEY": "sk-ant-test-secret",
    }

    def __init__(
        self,
        cfg_dict: dict[str, Any],
        start_service: bool = True,
        *,
        transport: Literal["plaintext", "mtls", "uds"] = "plaintext",
        workers: int = 1,
        signing_key: bool = True,
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="kt-stack-"))
        write_provider_credentials(cfg_dict, self.PROVIDER_ENV, self._dir / "secrets")
        if signing_key:  # False: the service's own no-key behaviour (loopback only)
            write_signing_key(cfg_dict, self._dir / "secrets")
        self.pki: DevPki | None = None
        if transport == "mtls":
            # As `make run`: a throwaway CA, the service's certificate and Envoy's client one.
            self.pki = generate(self._dir / "tls")
            server_tls, gateway_tls = tls_config(self.pki)
            cfg_dict["server"]["tls"] = server_tls
            cfg_dict["gateway"]["authz_tls"] = gateway_tls
        elif transport == "uds":
            socket_path = str(self._dir / "authz.sock")
            cfg_dict["server"]["uds_path"] = socket_path
            cfg_dict["gateway"]["authz_uds_path"] = socket_path
        self.config_path = self._dir / "keeptrusts.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg_dict), encoding="utf-8")
        self.cfg: Config = load_config(self.config_path)
        self.start_service = start_service
        self.workers = workers  # `serve --workers N` (1: one process, no supervisor)
        self.service: subprocess.Popen[bytes] | None = None
        self.envoy = EnvoyProcess(render_envoy_yaml(self.cfg))
        self.url = f"http://127.0.0.1:{self.cfg.gateway.listen_port}"
        self.service_log = self._dir / "authz.log"  # the first service's log
        self.service_logs: list[Path] = []

    def start(self) -> Stack:
        if self.start_service:
            self.start_authz()
        self.envoy.start()
        return self

    def start_authz(self) -> None:
        self.service = self.spawn_authz()

    def spawn_authz(self, port: int | None = None) -> subprocess.Popen[bytes]:
        """One more `serve` process (a replica, or a replacement on the same port: SO_REUSEPORT)
        on `port` (default server.grpc_port) with its own metrics port; returns once it listens."""
        # The service gets no provider key: only Envoy reads the credential files.
        env = {
            k: v for k, v in os.environ.items() if k != "REDIS_URL" and k not in self.PROVIDER_ENV
        }
        port = self.cfg.server.grpc_port if port is None else port
        first = not self.service_logs
        log_path = self.service_log if first else self._dir / f"authz-{len(self.service_logs)}.log"
        metrics_port = self.cfg.server.metrics_port if first else free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keeptrusts_authz.cli.main",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(port),
                "--metrics-port",
                str(metrics_port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.service_logs.append(log_path)
        try:
            # The metrics endpoint starts after the gRPC server: with SO_REUSEPORT the gRPC port
            # may already be open (the process being replaced).
            host = self.cfg.server.host
            wait_port(metrics_port, host="127.0.0.1" if host == "0.0.0.0" else host, timeout=30)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(f"authz service did not start:\n{log_path.read_text()}") from None
        return proc

    def stop_authz(self, timeout: float = 15) -> int | None:
        if self.service is None:
            return None
        self.service.terminate()
        try:
            code = self.service.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.service.kill()
            code = self.service.wait()
        self.service = None
        return code

    def stop(self) -> None:
        self.envoy.stop()
        self.stop_authz()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the wallet domain, from the test's side ------------------------------------------------

    def wallets(self, fn: Callable[[WalletService], Awaitable[T]]) -> T:
        async def go() -> T:
            store = RedisWalletStore(connect(self.cfg.redis), self.cfg.organization.id)
            try:
                return await fn(WalletService(store, self.cfg))
            finally:
                await store.close()

        return asyncio.run(go())

    def fund(self, team: str, amount_micros: int) -> None:
        async def go(w: WalletService) -> None:
            await w.credit(amount_micros, "USD", "test credit", "test")
            await w.allocate(f"team:{team}", amount_micros, "USD", "test allocation", "test")

        self.wallets(go)

    def wallet(self, wallet_id: str) -> Any:
        return self.wallets(lambda w: w.wallet(wallet_id))

    def wait_settled(self, wallet_id: str, timeout: float = 15.0) -> Any:
        """Wait until nothing is reserved in the wallet any more (every request reconciled)."""
        deadline = time.monotonic() + timeout
        while True:
            wallet = self.wallet(wallet_id)
            if wallet.reserved == 0 or time.monotonic() > deadline:
                return wallet
            time.sleep(0.05)

    # -- HTTP through Envoy --------------------------------------------------------------------

    def post(
        self,
        path: str,
        body: Any,
        key: str | None = "kt_cg_engineering_prod",
        headers: dict[str, str] | None = None,
        anthropic_style: bool = False,
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        req.add_header("content-type", "application/json")
        if key is not None:
            if anthropic_style:
                req.add_header("x-api-key", key)
            else:
                req.add_header("authorization", f"Bearer {key}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()
