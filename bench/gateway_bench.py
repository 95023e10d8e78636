"""Envoy direct vs. the full keeptrusts path (ext_authz + Lua usage filter + gRPC access log).

    .venv/bin/python bench/gateway_bench.py [--seconds 8] [--connections 32] [--rate 300]

The upstream "provider" is a second Envoy answering every request with a fixed OpenAI JSON body
(direct_response, usage included), so the provider costs next to nothing and what differs between
the two paths is our overhead. The baseline is the same rendered Envoy config with the ext_authz and
Lua filters and the access log removed. The load generator is a Python asyncio HTTP/1.1 client on
the same machine (2 cores shared by load generator, both Envoys, the authz service and Redis), so
absolute figures are lower bounds; the ratio and the added latency are what to compare.

Prints: requests/s at saturation (closed loop, N keep-alive connections), p50/p99 latency at a
fixed rate (open loop, latency measured from the scheduled send time), CPU per request of the
authz process, the full-path Envoy and Redis during the saturation run (/proc; the load generator
shares the machine), Redis commands per request (INFO commandstats) and reconciliation lag (from
the service's histogram).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testing.envoy_harness import EnvoyProcess
from testing.redis_server import RedisServer, free_port
from testing.stack import Stack, stack_config

USD = 1_000_000
BODY = json.dumps(
    {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
).encode()
UPSTREAM_REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
)


def _typed(type_url: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/" + type_url, **fields}


def upstream_yaml(port: int, admin: int) -> str:
    """A second Envoy standing in for the provider: every request gets UPSTREAM_REPLY."""
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_REPLY}},
        "response_headers_to_add": [
            {"header": {"key": "content-type", "value": "application/json"}}
        ],
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
    }
    hcm = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="fake",
        route_config={"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        http_filters=[router],
    )
    listener = {
        "name": "fake_provider",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
    return yaml.safe_dump(
        {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {"listeners": [listener]},
        }
    )


def direct_yaml(full_yaml: str, listen: int, admin: int) -> str:
    """The rendered config with only the router left: Envoy forwarding straight to the provider."""
    doc = yaml.safe_load(full_yaml)
    doc["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = doc["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [
        f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router"
    ]
    hcm.pop("access_log", None)
    for vh in hcm["route_config"]["virtual_hosts"]:
        for route in vh["routes"]:
            route.pop("typed_per_filter_config", None)
            if route.get("route", {}).get("cluster", "").startswith("provider_openai"):
                route["match"] = {"prefix": "/v1/"}
    # Put the provider route first so every request is forwarded.
    vh = hcm["route_config"]["virtual_hosts"][0]
    vh["routes"].sort(key=lambda r: 0 if r.get("match", {}).get("prefix") == "/v1/" else 1)
    return yaml.safe_dump(doc)


REQUEST_TEMPLATE = (
    "POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
    "authorization: Bearer kt_cg_engineering_prod\r\ncontent-length: {n}\r\n\r\n"
)
REQUEST = REQUEST_TEMPLATE.format(n=len(BODY)).encode() + BODY


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    if match:
        await reader.readexactly(int(match.group(1)))
    return status


async def saturate(port: int, connections: int, seconds: float) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def worker() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while time.perf_counter() < stop:
            code = await _one(reader, writer)
            statuses[code] = statuses.get(code, 0) + 1
            done += 1
        writer.close()
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker() for _ in range(connections)))
    return sum(counts) / (time.perf_counter() - started), statuses


async def fixed_rate(port: int, rate: float, seconds: float, connections: int = 16) -> list[float]:
    """Open loop: request i is due at start + i/rate; latency counts from when it was due."""
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(offset, total, connections):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await _one(reader, writer)
            latencies.append(time.perf_counter() - due)
        writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def commandstats(client: redis.Redis) -> dict[str, int]:
    info: dict[str, Any] = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def lag_from_metrics(port: int) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets = [
        (float(m.group(1)), float(m.group(2)))
        for m in re.finditer(
            r'keeptrusts_reconciliation_lag_seconds_bucket\{le="([^"+]+)"\} (\S+)', text
        )
    ]
    count = float(re.search(r"keeptrusts_reconciliation_lag_seconds_count (\S+)", text).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"keeptrusts_reconciliation_lag_seconds_sum (\S+)", text).group(1))  # type: ignore[union-attr]
    p99 = next((le for le, c in buckets if c >= 0.99 * count), float("inf"))
    return (total / count if count else 0.0), p99


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU a process has used so far (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=300.0)
    # How Envoy reaches the service: plaintext loopback, mTLS (server.tls, as make run) or UDS.
    ap.add_argument("--transport", choices=["plaintext", "mtls", "uds"], default="plaintext")
    args = ap.parse_args()

    with RedisServer() as rs:
        up_port = free_port()
        with EnvoyProcess(upstream_yaml(up_port, free_port())):
            cfg = stack_config(rs.url, f"http://127.0.0.1:{up_port}")
            with Stack(cfg, transport=args.transport) as stack:
                stack.fund("team_engineering", 1_000_000 * USD)
                direct_port = free_port()
                with EnvoyProcess(direct_yaml(stack.envoy.config_yaml, direct_port, free_port())):
                    r = redis.Redis.from_url(rs.url)
                    # warm-up both paths
                    asyncio.run(saturate(direct_port, 4, 1.0))
                    asyncio.run(saturate(stack.cfg.gateway.listen_port, 4, 1.0))

                    direct_rps, direct_codes = asyncio.run(
                        saturate(direct_port, args.connections, args.seconds)
                    )
                    before = commandstats(r)
                    assert stack.service is not None
                    pids = {"authz": stack.service.pid, "envoy": stack.envoy.pid, "redis": rs.pid}
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    full_rps, full_codes = asyncio.run(
                        saturate(stack.cfg.gateway.listen_port, args.connections, args.seconds)
                    )
                    cpu_used = {n: cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()}
                    settled = stack.wait_settled("team:team_engineering", timeout=60)
                    after = commandstats(r)
                    requests = sum(full_codes.values())

                    direct_lat = asyncio.run(fixed_rate(direct_port, args.rate, args.seconds))
                    full_lat = asyncio.run(
                        fixed_rate(stack.cfg.gateway.listen_port, args.rate, args.seconds)
                    )
                    stack.wait_settled("team:team_engineering", timeout=60)
                    lag_mean, lag_p99 = lag_from_metrics(stack.cfg.server.metrics_port)
                    audit = stack.wallets(lambda w: w.audit())

    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    calls = {k: v for k, v in calls.items() if v and k not in ("info",)}
    print(f"== Envoy direct vs full keeptrusts path (Envoy -> authz: {args.transport}) ==")
    print(f"saturation ({args.connections} connections, {args.seconds:.0f}s):")
    print(f"  envoy direct : {direct_rps:8.0f} req/s  statuses {direct_codes}")
    print(
        f"  full path    : {full_rps:8.0f} req/s  statuses {full_codes}  "
        f"({100 * full_rps / direct_rps:.0f}% of direct)"
    )
    dp50, dp99 = pct(direct_lat, 0.50), pct(direct_lat, 0.99)
    fp50, fp99 = pct(full_lat, 0.50), pct(full_lat, 0.99)
    print(f"latency at {args.rate:.0f} req/s (open loop, {len(full_lat)} requests):")
    print(f"  envoy direct : p50 {dp50 * 1000:6.2f} ms  p99 {dp99 * 1000:6.2f} ms")
    print(f"  full path    : p50 {fp50 * 1000:6.2f} ms  p99 {fp99 * 1000:6.2f} ms")
    print(
        f"  added        : p50 {(fp50 - dp50) * 1000:6.2f} ms  p99 {(fp99 - dp99) * 1000:6.2f} ms"
    )
    print(f"CPU per request (saturation run, /proc utime+stime, {requests} requests):")
    for name, seconds in cpu_used.items():
        print(f"  {name:10s} {1e6 * seconds / requests:6.0f} us")
    print(f"redis commands per request (saturation run, {requests} requests):")
    for name, n in sorted(calls.items()):
        print(f"  {name:10s} {n / requests:6.3f}")
    print(
        f"reconciliation lag: mean {lag_mean * 1000:.1f} ms, "
        f"p99 <= {lag_p99 * 1000:.0f} ms (histogram bucket)"
    )
    print(
        f"after the runs: reserved {settled.reserved} micros left; "
        f"audit ok={audit.ok} over {audit.entries} entries"
    )
    print(
        f"mean latency direct {statistics.mean(direct_lat) * 1000:.2f} ms, "
        f"full {statistics.mean(full_lat) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
