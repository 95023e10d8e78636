"""Check latency with and without the reservation signature (issue 9: signing must add at most
0.2 ms p50).

The service runs in process (`build_app` + `start_server` on a loopback port) against a real
redis-server; one client sends Checks one at a time over gRPC (each reserves: one EVALSHA).
Rounds alternate between the real signer and a signer whose `sign` does nothing, so machine noise
falls on both alike. Also prints the cost of one `sign` and one `verify` call alone.

    python bench/check_bench.py [checks_per_round]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from keeptrusts_authz.config import parse_config  # noqa: E402
from keeptrusts_authz.gateway.signing import ReservationSigner  # noqa: E402
from keeptrusts_authz.server import build_app, start_server  # noqa: E402
from testing.redis_server import RedisServer  # noqa: E402

USD = 1_000_000


def _request() -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    http = req.attributes.request.http
    http.path, http.method = "/v1/chat/completions", "POST"
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    http.raw_body = json.dumps(body).encode()
    http.headers.update({"authorization": "Bearer kt_eng", "content-type": "application/json"})
    return req


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def micro() -> tuple[float, float]:
    signer = ReservationSigner("acme", [b"k" * 64], 600_000)
    meta: dict[str, str | bool] = {
        "reservation_id": "r_" + "1" * 24,
        "wallet": "team:team_eng",
        "estimate_micros": "1234",
        "model": "gpt-4o-mini",
        "priced_model": "gpt-4o-mini",
        "input_bound_tokens": "200",
        "output_bounded": True,
        "extra_output_tokens": "0",
    }
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        signer.sign(meta)
    sign_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        signer.verify(meta)
    verify_us = (time.perf_counter() - started) / n * 1e6
    return sign_us, verify_us


async def bench(redis_url: str, per_round: int, rounds: int) -> dict[str, list[float]]:
    cfg = parse_config(
        {
            "organization": {"id": "acme"},
            "consumer_groups": [{"name": "eng", "api_key": "kt_eng", "wallet_team_id": "team_eng"}],
            "providers": [{"name": "openai", "url": "http://127.0.0.1:1", "models": ["gpt-*"]}],
            "redis": {"url": redis_url},
        }
    )
    app = build_app(cfg, registry=CollectorRegistry())
    running = await start_server(app, host="127.0.0.1", port=0)
    await app.wallets.credit(100_000 * USD, "USD", "bench", "bench")
    await app.wallets.allocate("team:team_eng", 100_000 * USD, "USD", "bench", "bench")
    signer = app.signer
    real_sign = signer.sign
    out: dict[str, list[float]] = {"signed": [], "unsigned": []}
    req = _request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for _ in range(200):  # warm-up
            await stub.Check(req)
        for r in range(rounds * 2):
            mode = "signed" if r % 2 == 0 else "unsigned"
            signer.sign = real_sign if mode == "signed" else (lambda *a, **k: None)  # type: ignore[method-assign]
            for _ in range(per_round):
                started = time.perf_counter()
                resp = await stub.Check(req)
                out[mode].append(time.perf_counter() - started)
                assert resp.status.code == 0
    signer.sign = real_sign  # type: ignore[method-assign]
    await running.stop(grace=0)
    return out


def main() -> int:
    # `make bench` hands every script its first argument; only a number means something here.
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500
    rounds = 4
    sign_us, verify_us = micro()
    print(f"  sign()       : {sign_us:6.2f} us per call   verify(): {verify_us:6.2f} us per call")
    with RedisServer() as server:
        results = asyncio.run(bench(server.url, per_round, rounds))
    for mode in ("unsigned", "signed"):
        lat = results[mode]
        print(
            f"  Check {mode:8s}: p50 {pct(lat, 0.5) * 1000:6.3f} ms  p99 "
            f"{pct(lat, 0.99) * 1000:6.3f} ms  mean {statistics.mean(lat) * 1000:6.3f} ms"
            f"  ({len(lat)} Checks)"
        )
    added = pct(results["signed"], 0.5) - pct(results["unsigned"], 0.5)
    print(f"  signing adds : p50 {added * 1000:+6.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
