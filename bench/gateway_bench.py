"""Envoy direct vs. the full keeptrusts path (ext_authz + Lua usage filter + gRPC access log).

    .venv/bin/python bench/gateway_bench.py [--seconds 8] [--connections 32] [--rate 300]

The upstream "provider" is a second Envoy answering every request with a fixed OpenAI JSON body
(direct_response, usage included), so the provider costs next to nothing and what differs between
the two paths is our overhead. The baseline is the same rendered Envoy config with the ext_authz and
Lua filters and the access log removed. The load generator is a Python asyncio HTTP/1.1 client on
the same machine (2 cores shared by load generator, both Envoys, the authz service and Redis), so
absolute figures are lower bounds; the ratio and the added latency are what to compare.

Load generator: `wrk` (Debian package, installed with apt-get when missing and running as root)
for the saturation runs, so the generator does not share the Python interpreter's costs; the
Python asyncio client is the fallback (`--client python`). The fixed-rate latency run stays the
Python open-loop client (wrk has no fixed rate; 300 req/s is far below what it can send).
The full path is measured with `serve --workers 1` and `--workers 2` (the 1 -> 2 worker scaling).

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
import shutil
import statistics
import subprocess
import sys
import tempfile
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


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer kt_cg_engineering_prod"
"""


def find_wrk() -> str | None:
    """`wrk`, installed from Debian's packages when missing (as root); None: use Python."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk) ...", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        found = shutil.which("wrk")
    return found


def saturate_wrk(
    wrk: str, port: int, connections: int, seconds: float
) -> tuple[float, dict[int, int]]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT.format(body=json.dumps(BODY.decode())))
        script = f.name
    try:
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "-s",
                script,
                f"http://127.0.0.1:{port}/v1/chat/completions",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(bad_match.group(1)) if bad_match else 0
    codes = {200: total - bad}
    if bad:
        codes[0] = bad  # wrk does not say which statuses
    return rps, codes


def process_tree(pid: int | None) -> list[int]:
    """`pid` and its descendants (a `serve --workers N` supervisor and its workers)."""
    if pid is None:
        return []
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                out += process_tree(int(child))
    except OSError:
        pass
    return out


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU a process has used so far (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def full_path_run(
    rs: RedisServer,
    up_port: int,
    args: argparse.Namespace,
    wrk: str | None,
    workers: int,
    with_direct: bool,
) -> dict[str, Any]:
    """One Stack with `serve --workers N`: saturation (and Envoy-direct, fixed-rate latency,
    commands and lag when `with_direct`)."""
    out: dict[str, Any] = {}

    def sat(port: int) -> tuple[float, dict[int, int]]:
        if wrk is not None:
            return saturate_wrk(wrk, port, args.connections, args.seconds)
        return asyncio.run(saturate(port, args.connections, args.seconds))

    cfg = stack_config(rs.url, f"http://127.0.0.1:{up_port}")
    with Stack(cfg, workers=workers, transport=args.transport) as stack:
        stack.fund("team_engineering", 1_000_000 * USD)
        direct_port = free_port()
        with EnvoyProcess(direct_yaml(stack.envoy.config_yaml, direct_port, free_port())):
            r = redis.Redis.from_url(rs.url)
            asyncio.run(saturate(direct_port, 4, 1.0))  # warm-up both paths
            asyncio.run(saturate(stack.cfg.gateway.listen_port, 4, 1.0))
            stack.wait_settled("team:team_engineering", timeout=15)
            if with_direct:
                out["direct"] = sat(direct_port)
            before = commandstats(r)
            assert stack.service is not None
            authz_pids = process_tree(stack.service.pid)
            pids: dict[str, list[int]] = {
                "authz": authz_pids,
                "envoy": [stack.envoy.pid or 0],
                "redis": [rs.pid or 0],
            }
            cpu_before = {n: sum(cpu_seconds(p) for p in ps) for n, ps in pids.items()}
            out["full"] = sat(stack.cfg.gateway.listen_port)
            out["cpu"] = {
                n: sum(cpu_seconds(p) for p in ps) - cpu_before[n] for n, ps in pids.items()
            }
            out["authz_processes"] = len(authz_pids)
            out["settled"] = stack.wait_settled("team:team_engineering", timeout=15)
            after = commandstats(r)
            out["calls"] = {
                k: after.get(k, 0) - before.get(k, 0)
                for k in after
                if after.get(k, 0) - before.get(k, 0) and k != "info"
            }
            if with_direct:
                out["direct_lat"] = asyncio.run(fixed_rate(direct_port, args.rate, args.seconds))
                out["full_lat"] = asyncio.run(
                    fixed_rate(stack.cfg.gateway.listen_port, args.rate, args.seconds)
                )
                stack.wait_settled("team:team_engineering", timeout=15)
                out["lag"] = lag_from_metrics(stack.cfg.server.metrics_port)
            out["audit"] = stack.wallets(lambda w: w.audit())
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--client", choices=["wrk", "python"], default="wrk")
    ap.add_argument("--workers", type=int, default=2, help="the scaling run's worker count")
    # How Envoy reaches the service: plaintext loopback, mTLS (server.tls, as make run) or UDS.
    ap.add_argument("--transport", choices=["plaintext", "mtls", "uds"], default="plaintext")
    args = ap.parse_args()
    wrk = find_wrk() if args.client == "wrk" else None

    with RedisServer() as rs:
        up_port = free_port()
        with EnvoyProcess(upstream_yaml(up_port, free_port())):
            one = full_path_run(rs, up_port, args, wrk, 1, with_direct=True)
            many = (
                full_path_run(rs, up_port, args, wrk, args.workers, with_direct=False)
                if args.workers > 1
                else None
            )

    direct_rps, direct_codes = one["direct"]
    full_rps, full_codes = one["full"]
    requests = sum(full_codes.values())
    print(f"== Envoy direct vs full keeptrusts path (Envoy -> authz: {args.transport}) ==")
    print(f"load generator: {wrk or 'python asyncio client'}")
    print(f"saturation ({args.connections} connections, {args.seconds:.0f}s):")
    print(f"  envoy direct : {direct_rps:8.0f} req/s  statuses {direct_codes}")
    print(
        f"  full path    : {full_rps:8.0f} req/s  statuses {full_codes}  "
        f"({100 * full_rps / direct_rps:.0f}% of direct)  [serve --workers 1]"
    )
    if many is not None:
        many_rps, many_codes = many["full"]
        print(
            f"  full path    : {many_rps:8.0f} req/s  statuses {many_codes}  "
            f"({100 * many_rps / direct_rps:.0f}% of direct)  [serve --workers {args.workers}]"
            f"  scaling 1 -> {args.workers}: x{many_rps / full_rps:.2f}"
        )
    direct_lat, full_lat = one["direct_lat"], one["full_lat"]
    dp50, dp99 = pct(direct_lat, 0.50), pct(direct_lat, 0.99)
    fp50, fp99 = pct(full_lat, 0.50), pct(full_lat, 0.99)
    print(f"latency at {args.rate:.0f} req/s (open loop, {len(full_lat)} requests, 1 worker):")
    print(f"  envoy direct : p50 {dp50 * 1000:6.2f} ms  p99 {dp99 * 1000:6.2f} ms")
    print(f"  full path    : p50 {fp50 * 1000:6.2f} ms  p99 {fp99 * 1000:6.2f} ms")
    print(
        f"  added        : p50 {(fp50 - dp50) * 1000:6.2f} ms  p99 {(fp99 - dp99) * 1000:6.2f} ms"
    )
    for label, run in (("1 worker", one), (f"{args.workers} workers", many)):
        if run is None:
            continue
        n = sum(run["full"][1].values())
        print(f"CPU per request ({label}, saturation run, /proc utime+stime, {n} requests):")
        for name, seconds in run["cpu"].items():
            extra = f" ({run['authz_processes']} processes)" if name == "authz" else ""
            print(f"  {name:10s} {1e6 * seconds / n:6.0f} us{extra}")
    print(f"redis commands per request (saturation run, {requests} requests):")
    for name, calls in sorted(one["calls"].items()):
        print(f"  {name:10s} {calls / requests:6.3f}")
    lag_mean, lag_p99 = one["lag"]
    print(
        f"reconciliation lag: mean {lag_mean * 1000:.1f} ms, "
        f"p99 <= {lag_p99 * 1000:.0f} ms (histogram bucket)"
    )
    for label, run in (("1 worker", one), (f"{args.workers} workers", many)):
        if run is None:
            continue
        print(
            f"after the runs ({label}): reserved {run['settled'].reserved} micros left; "
            f"audit ok={run['audit'].ok} over {run['audit'].entries} entries"
        )
    print(
        f"mean latency direct {statistics.mean(direct_lat) * 1000:.2f} ms, "
        f"full {statistics.mean(full_lat) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
