"""The Check's latency per transport between Envoy and the service: plaintext loopback TCP, mTLS
(`server.tls`, as `make run` and the k8s overlays) and a Unix socket (sidecar mode).

    .venv/bin/python bench/check_transport_bench.py [--checks 2000] [--rounds 3]

For each transport a real `serve` process (real Redis) answers sequential Checks on one long-lived
HTTP/2 channel (as Envoy keeps one), from a Python gRPC client holding Envoy's client certificate
for mTLS. The handshake happens once per connection, so what differs is the per-message record
encryption. Rounds alternate between the transports so a load change on the shared machine hits
them alike; the p50 of each round is printed, then the median of those p50s and the difference to
plaintext. Every Check reserves (and the ledger grows): the team is funded generously.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config

TRANSPORTS = ("plaintext", "mtls", "uds")


def _request() -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "POST", "/v1/chat/completions"
    http.headers.update(
        {"authorization": "Bearer kt_cg_engineering_prod", "content-type": "application/json"}
    )
    http.body = (
        '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
    )
    return request


def _channel(stack: Stack, transport: str) -> grpc.Channel:
    if transport == "uds":
        return grpc.insecure_channel(f"unix:{stack.cfg.server.uds_path}")
    target = f"127.0.0.1:{stack.cfg.server.grpc_port}"
    if transport == "plaintext":
        return grpc.insecure_channel(target)
    pki = stack.pki
    assert pki is not None
    creds = grpc.ssl_channel_credentials(
        pki.ca_file.read_bytes(),
        pki.client.key_file.read_bytes(),
        pki.client.cert_file.read_bytes(),
    )
    return grpc.secure_channel(target, creds, [("grpc.ssl_target_name_override", pki.server_name)])


def _p50_ms(stub: external_auth_pb2_grpc.AuthorizationStub, n: int) -> float:
    request = _request()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = stub.Check(request, timeout=5)
        times.append(time.perf_counter() - t0)
        assert answer.HasField("ok_response"), answer
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    p50s: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    with RedisServer() as rs:
        stacks = {}
        try:
            for t in TRANSPORTS:
                cfg = stack_config(rs.url, "http://127.0.0.1:9")  # no provider is called
                cfg["enforcement"]["reservation_ttl_seconds"] = 3600
                stack = Stack(cfg, transport=t)  # type: ignore[arg-type]
                stack.start_authz()  # the service only: the client plays Envoy
                stacks[t] = stack
            stacks["plaintext"].fund("team_engineering", 10**15)
            channels = {t: _channel(s, t) for t, s in stacks.items()}
            stubs = {t: external_auth_pb2_grpc.AuthorizationStub(c) for t, c in channels.items()}
            for t in TRANSPORTS:
                _p50_ms(stubs[t], 200)  # warm-up: connection, handshake, scripts loaded
            for _ in range(args.rounds):
                for t in TRANSPORTS:
                    p50s[t].append(_p50_ms(stubs[t], args.checks))
        finally:
            for s in stacks.values():
                s.stop_authz()
    base = statistics.median(p50s["plaintext"])
    print(f"== Check latency by transport ({args.rounds} rounds x {args.checks} Checks) ==")
    for t in TRANSPORTS:
        rounds = " ".join(f"{v:.3f}" for v in p50s[t])
        med = statistics.median(p50s[t])
        print(f"  {t:9s}: p50 {med:.3f} ms (rounds: {rounds})  vs plaintext {med - base:+.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
