"""`keeptrusts-authz serve`: the gRPC service (ext_authz, access log, wallet API, health)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from keeptrusts_authz.config import ConfigError, load_config


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{exc.source}: {line}", file=sys.stderr)
        return 2
    from keeptrusts_authz.server import serve_forever

    try:
        asyncio.run(serve_forever(cfg, port=args.port, metrics_port=args.metrics_port))
    except ConfigError as exc:  # e.g. a price table that does not load
        for line in exc.errors:
            print(f"{exc.source}: {line}", file=sys.stderr)
        return 2
    except KeyError as exc:  # e.g. an api_key_env variable that is not set
        print(f"keeptrusts-authz: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gRPC ext_authz / access-log / wallet API server")
    p.add_argument("--config", help="config file (default: $KEEPTRUSTS_CONFIG)")
    p.add_argument("--port", type=int, help="gRPC port (default: server.grpc_port)")
    p.add_argument(
        "--metrics-port", type=int, help="Prometheus port (default: server.metrics_port)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)
