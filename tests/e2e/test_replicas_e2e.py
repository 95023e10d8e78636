"""Replicas and restarts through the real Envoy, under load (DESIGN: a replica's loss or restart
must neither refuse Checks for long nor lose a settlement).

- two replicas, one SIGKILLed: fewer than 1 % of the requests finishing in the next 2 s fail,
  none after; every completed request is settled once at its real cost (each access-log entry
  goes to both replicas; the survivor settles the dead one's share);
- two replicas, one SIGTERMed: it reports NOT_SERVING, Envoy moves off it, nothing fails;
- one process replaced on the same port (SO_REUSEPORT): no refused Check.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer, empty_keeping_epochs, free_port
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
CHAT = "/v1/chat/completions"
USAGE = (10, 5, 0)
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
).encode()
WORKERS = 4


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _flush(redis_server: RedisServer) -> None:
    empty_keeping_epochs(redis_server.url)  # the module's services keep running


@dataclass
class Load:
    """WORKERS keep-alive clients posting through Envoy until stopped; every result timed."""

    port: int
    results: list[tuple[float, int]] = field(default_factory=list)  # (finished at, status)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {
            "content-type": "application/json",
            "authorization": "Bearer kt_cg_engineering_prod",
            "x-fake-usage": ",".join(map(str, USAGE)),
        }
        while not self._stop.is_set():
            try:
                conn.request("POST", CHAT, BODY, headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                status = -1  # the gateway itself failed (never expected)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            with self._lock:
                self.results.append((time.monotonic(), status))
        conn.close()

    def start(self) -> Load:
        for _ in range(WORKERS):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def between(self, start: float, end: float) -> list[int]:
        return [s for t, s in self.results if start <= t < end]


def _two_replica_stack(
    redis_url: str, provider_url: str, a: int | None = None
) -> tuple[Stack, int, int]:
    """Envoy with two authz endpoints (`a`, default a free port, and a free port b)."""
    a, b = a or free_port(), free_port()
    cfg = stack_config(redis_url, provider_url, server={"drain_seconds": 1.5})
    cfg["gateway"] = {
        "listen_port": free_port(),
        "admin_port": free_port(),
        "access_log_flush_ms": 50,
        "authz_endpoints": [{"host": "127.0.0.1", "port": a}, {"host": "127.0.0.1", "port": b}],
    }
    cfg["server"]["grpc_port"] = a
    return Stack(cfg, start_service=False), a, b


def _healthy_hosts(stack: Stack) -> dict[str, set[int]]:
    """Per authz cluster, the ports Envoy currently considers healthy."""
    with urllib.request.urlopen(stack.envoy.admin_url + "/clusters?format=json", timeout=5) as r:
        doc: dict[str, Any] = json.load(r)
    out: dict[str, set[int]] = {}
    for cluster in doc.get("cluster_statuses", []):
        if not cluster["name"].startswith("keeptrusts_authz"):
            continue
        ports = out.setdefault(cluster["name"], set())
        for host in cluster.get("host_statuses", []):
            health = host.get("health_status", {})
            bad = {k for k, v in health.items() if k != "eds_health_status" and v}
            if not bad and health.get("eds_health_status", "HEALTHY") == "HEALTHY":
                ports.add(host["address"]["socket_address"]["port_value"])
    return out


def _wait_healthy(stack: Stack, ports: set[int], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        hosts = _healthy_hosts(stack)
        if hosts and all(h == ports for h in hosts.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Envoy's healthy authz hosts: {hosts}, expected {ports}")
        time.sleep(0.1)


def _authz_stats(stack: Stack) -> dict[str, int]:
    """Envoy's non-zero counters about the authz cluster and the ext_authz filter (diagnosis)."""
    stats = {**stack.envoy.stats("keeptrusts_authz"), **stack.envoy.stats("ext_authz")}
    return {k: v for k, v in stats.items() if v and "bytes" not in k}


def _assert_every_completed_request_settled(
    stack: Stack, ok: int, failed: int, lost_at_most: int = 0
) -> None:
    cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o-mini", *USAGE)
    deadline = time.monotonic() + 15
    while True:
        entries = stack.wallets(lambda w: w.ledger(10_000))
        settles = [e for e in entries if e.op == "settle"]
        if len(settles) >= ok - lost_at_most and time.monotonic() > deadline - 13:
            break
        if len(settles) >= ok or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len({e.fields["reservation"] for e in settles}) == len(settles), "settled twice"
    assert ok - lost_at_most <= len(settles) <= ok, f"{ok} completed, {len(settles)} settled"
    assert all(e.fields["estimated"] == "0" and e.amount == cost for e in settles)
    wallet = stack.wallet("team:team_engineering")
    assert wallet.spent_total == len(settles) * cost
    # A Check cut off inside a killed replica may have reserved (it stays open and expires at its
    # estimate); without a failure or a lost entry nothing stays reserved.
    if failed == 0 and len(settles) == ok:
        assert wallet.reserved == 0
    report = stack.wallets(lambda w: w.audit())
    assert report.ok, report.mismatches


def _replica_loss(
    redis_server: RedisServer, provider: FakeProvider, sig: signal.Signals
) -> tuple[Stack, Load, float, subprocess.Popen[bytes]]:
    stack, a, b = _two_replica_stack(redis_server.url, provider.url)
    first = stack.spawn_authz(a)
    second = stack.spawn_authz(b)
    stack.envoy.start()
    _wait_healthy(stack, {a, b})
    stack.fund("team_engineering", 1000 * USD)
    load = Load(stack.cfg.gateway.listen_port).start()
    time.sleep(1.5)
    lost_at = time.monotonic()
    first.send_signal(sig)
    time.sleep(3.0)
    load.stop()
    first.wait(timeout=15)
    return stack, load, lost_at, second


def test_one_of_two_replicas_killed_under_load(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    stack, load, killed_at, survivor = _replica_loss(redis_server, provider, signal.SIGKILL)
    try:
        before = load.between(0, killed_at)
        window = load.between(killed_at, killed_at + 2.0)
        after = load.between(killed_at + 2.0, float("inf"))
        assert before and window and after, (len(before), len(window), len(after))
        assert set(before) == {200}
        failed_in_window = sum(1 for s in window if s != 200)
        assert failed_in_window < 0.01 * len(window), (
            failed_in_window,
            len(window),
            _authz_stats(stack),
        )
        assert set(after) == {200}
        ok = sum(1 for _, s in load.results if s == 200)
        _assert_every_completed_request_settled(stack, ok, len(load.results) - ok)
        # Checks in flight on the killed replica were retried on the survivor with the same
        # check id, so the same reservation id: adopted, never reserved twice.
        r = redis.Redis.from_url(redis_server.url)
        adopted = sum(1 for key in r.scan_iter("kt:{acme}:r:r_*") if r.hget(key, "adopted") == b"1")
        print(
            f"\nkilled replica: {len(before)} before, {len(window)} in the 2 s after "
            f"({failed_in_window} failed), {len(after)} after; {ok} settled; "
            f"{adopted} reservations adopted by a retried Check"
        )
    finally:
        survivor.terminate()
        survivor.wait(timeout=15)
        stack.stop()


def test_one_of_two_replicas_stopped_gracefully_under_load(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    stack, load, stopped_at, survivor = _replica_loss(redis_server, provider, signal.SIGTERM)
    try:
        assert load.results and {s for _, s in load.results} == {200}
        assert load.between(stopped_at + 2.0, float("inf"))
        _assert_every_completed_request_settled(stack, len(load.results), 0)
    finally:
        survivor.terminate()
        survivor.wait(timeout=15)
        stack.stop()


def test_restart_on_the_same_port_refuses_no_check(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    cfg = stack_config(redis_server.url, provider.url, server={"drain_seconds": 1.0})
    stack = Stack(cfg, start_service=False)
    old = stack.spawn_authz()
    stack.envoy.start()
    port = stack.cfg.server.grpc_port
    _wait_healthy(stack, {port})
    stack.fund("team_engineering", 1000 * USD)
    load = Load(stack.cfg.gateway.listen_port).start()
    new: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)
        new = stack.spawn_authz()  # binds the same port while the old one still serves
        old.send_signal(signal.SIGTERM)
        assert old.wait(timeout=20) == 0
        time.sleep(1.5)
        load.stop()
        statuses = [s for _, s in load.results]
        counts = {s: statuses.count(s) for s in set(statuses)}
        print(counts, _authz_stats(stack))
        # No refused Check: a Check on the old process's connection as it closes is retried on
        # the new one (retry_on reset/unavailable, the same check id: the same reservation).
        # Known residual gap: entries in flight on the old access-log streams when they are
        # cancelled are lost (ALS has no acknowledgement; those reservations expire at their
        # estimate), bounded below. Without SO_REUSEPORT the replacement cannot bind.
        failed = len(statuses) - counts.get(200, 0)
        assert statuses and failed == 0, (counts, _authz_stats(stack))
        _assert_every_completed_request_settled(
            stack, counts.get(200, 0), failed, lost_at_most=max(2, len(statuses) // 100)
        )
    finally:
        load.stop()
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        stack.stop()


class _DyingReplicaProxy:
    """Stands between Envoy and a real replica. Once `die()` is called, it plays a replica that
    dies after its Check landed: what Envoy sends still reaches the replica (which reserves and
    answers), the answers are swallowed, and 0.3 s after Envoy's first bytes the Envoy side is
    reset (RST), as a SIGKILL would. The replica side stays open 2 s so the replica's handler
    finishes normally (a killed replica releases nothing)."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self._upstream = upstream_port
        self.dying = threading.Event()
        self.resets = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def die(self) -> None:
        self.dying.set()

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        reset_at: float | None = None
        client.settimeout(0.05)
        while True:
            if reset_at is not None and time.monotonic() >= reset_at:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # RST to Envoy
                self.resets += 1
                time.sleep(2.0)
                upstream.close()
                return
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                upstream.close()
                return
            if not data:
                upstream.close()
                return
            if self.dying.is_set() and reset_at is None:
                reset_at = time.monotonic() + 0.3
            upstream.sendall(data)

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.dying.is_set():
                continue  # the dead replica's answers never reach Envoy
            try:
                client.sendall(data)
            except OSError:
                return


def test_a_check_whose_replica_dies_after_reserving_is_retried_on_the_same_reservation(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    """Deterministic form of the kill: replica A reserves, then 'dies' before its answer reaches
    Envoy. Envoy retries the Check on B (retry_on reset) with the same check id, so B derives the
    same reservation id and adopts A's reservation (reserve.lua `duplicate`): the request is
    served, charged once at its real cost, nothing left reserved to expire at the estimate.
    Before (random reservation ids, no retry on reset) the Check failed with 503, and with a
    retry alone A's reservation stayed open to be charged its estimate."""
    a_port = free_port()
    proxy = _DyingReplicaProxy(a_port)  # Envoy -> proxy -> replica A
    stack, _, b = _two_replica_stack(redis_server.url, provider.url, a=proxy.port)
    first = stack.spawn_authz(a_port)
    second = stack.spawn_authz(b)
    try:
        stack.envoy.start()
        _wait_healthy(stack, {proxy.port, b})
        stack.fund("team_engineering", 1000 * USD)
        proxy.die()
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", stack.cfg.gateway.listen_port, timeout=10)
        headers = {
            "content-type": "application/json",
            "authorization": "Bearer kt_cg_engineering_prod",
            "x-fake-usage": ",".join(map(str, USAGE)),
        }
        for _ in range(12):
            conn.request("POST", CHAT, BODY, headers)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        r = redis.Redis.from_url(redis_server.url)
        adopted = [k for k in r.scan_iter("kt:{acme}:r:r_*") if r.hget(k, "adopted") == b"1"]
        print(f"\nstatuses {statuses}; proxy resets {proxy.resets}; adopted {len(adopted)}")
        assert statuses == [200] * len(statuses), (statuses, _authz_stats(stack))
        assert proxy.resets >= 1 and adopted, (proxy.resets, _authz_stats(stack))
        _assert_every_completed_request_settled(stack, len(statuses), 0)
    finally:
        proxy.close()
        for proc in (first, second):
            proc.terminate()
            proc.wait(timeout=15)
        stack.stop()
