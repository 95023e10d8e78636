"""The transport's floor: what a Check + access-log service costs in Python before it does any
work (issue 13: where the authz CPU per request goes).

The real Envoy, rendered from the same config as the full path, sends every request's Check and
access-log entry to a grpc.aio server that does nothing: the Check answers OK with the routing
header the provider route needs, the access log is read and dropped, grpc.health.v1 says SERVING.
wrk saturates it as gateway_bench.py does; the script prints requests/s and the CPU per request
of that stub and of Envoy (from /proc). Compare with gateway_bench.py's `authz` CPU per request:
the difference is what the service's own work costs (parsing, pricing, the reserve and settle
scripts through redis-py, signing, metrics); the floor is what grpc.aio's per-RPC machinery costs
on this machine, whatever the service does.

    .venv/bin/python bench/floor_bench.py [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
from envoy.config.core.v3 import base_pb2  # noqa: E402
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc  # noqa: E402
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc  # noqa: E402
from gateway_bench import cpu_seconds, find_wrk, saturate, saturate_wrk, upstream_yaml  # noqa: E402
from google.rpc import status_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_health.v1._async import HealthServicer  # noqa: E402

from keeptrusts_authz.envoy_contract import AUTHZ_HEALTH_SERVICE, PROVIDER_HEADER  # noqa: E402
from testing.envoy_harness import EnvoyProcess  # noqa: E402
from testing.redis_server import RedisServer, free_port, wait_port  # noqa: E402
from testing.stack import Stack, stack_config  # noqa: E402


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


class _Check(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    async def Check(self, request: Any, context: Any) -> Any:
        ok = external_auth_pb2.OkHttpResponse(headers=[_header(PROVIDER_HEADER, "openai")])
        return external_auth_pb2.CheckResponse(status=status_pb2.Status(code=0), ok_response=ok)


class _AccessLog(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    async def StreamAccessLogs(self, request_iterator: Any, context: Any) -> Any:
        async for _ in request_iterator:
            pass
        return als_pb2.StreamAccessLogsResponse()


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(_Check(), server)
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(_AccessLog(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", AUTHZ_HEALTH_SERVICE):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)  # the stub process
    args, _ = ap.parse_known_args()
    if args.serve_port:
        asyncio.run(_serve(args.serve_port))
        return 0
    wrk = find_wrk()
    print("== transport floor: Envoy -> a do-nothing grpc.aio Check + access-log server ==")
    with RedisServer() as rs:
        up_port = free_port()
        with EnvoyProcess(upstream_yaml(up_port, free_port())):
            cfg = stack_config(rs.url, f"http://127.0.0.1:{up_port}")
            stack = Stack(cfg, start_service=False)
            port = stack.cfg.server.grpc_port
            stub = subprocess.Popen(
                [sys.executable, __file__, "--serve-port", str(port)], env=dict(os.environ)
            )
            try:
                wait_port(port, timeout=30)
                stack.envoy.start()
                time.sleep(1.0)  # health checks pass
                gateway = stack.cfg.gateway.listen_port
                asyncio.run(saturate(gateway, 4, 1.0))  # warm-up
                for _ in range(args.rounds):
                    c0, e0 = cpu_seconds(stub.pid), cpu_seconds(stack.envoy.pid)
                    if wrk is not None:
                        rps, codes = saturate_wrk(wrk, gateway, args.connections, args.seconds)
                    else:
                        rps, codes = asyncio.run(saturate(gateway, args.connections, args.seconds))
                    n = max(1, sum(codes.values()))
                    stub_us = 1e6 * (cpu_seconds(stub.pid) - c0) / n
                    envoy_us = 1e6 * (cpu_seconds(stack.envoy.pid) - e0) / n
                    print(
                        f"  {rps:7.0f} req/s  statuses {codes}  CPU per request: "
                        f"stub authz {stub_us:5.0f} us, envoy {envoy_us:5.0f} us"
                    )
            finally:
                stub.kill()
                stub.wait(timeout=10)
                stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
