"""A restart on the same port loses no settlement (issue 13): the old process ends its
access-log streams right after a flush once it has sent GOAWAY, so Envoy's next flush goes to the
replacement, instead of the streams being cancelled with entries in flight at the end of the
grace period. Through the real Envoy and Redis, under steady load, three restarts in a row.

Bounded and robust under CPU load: the only timing bound is half a 60 s grace; the load is
modest (4 keep-alive clients) and every completed request must be settled once at its real cost,
none at an estimate."""

from __future__ import annotations

import signal
import subprocess
import time

from testing.stack import Stack, stack_config
from tests.e2e.test_replicas_e2e import (
    USD,
    Load,
    _assert_every_completed_request_settled,
    _wait_healthy,
    provider,  # noqa: F401  (the module's fake provider fixture)
)
from tests.fake_provider import FakeProvider

RESTARTS = 3
GRACE = 60.0


def test_restarts_on_the_same_port_lose_no_settlement(
    redis_url: str,
    provider: FakeProvider,  # noqa: F811
) -> None:
    cfg = stack_config(
        redis_url,
        provider.url,
        # A long grace: the old process must end its access-log streams itself, well before it.
        server={"drain_seconds": 0.5, "shutdown_grace_seconds": GRACE},
    )
    stack = Stack(cfg, start_service=False)
    current = stack.spawn_authz()
    stack.envoy.start()
    _wait_healthy(stack, {stack.cfg.server.grpc_port})
    stack.fund("team_engineering", 1000 * USD)
    load = Load(stack.cfg.gateway.listen_port).start()
    procs: list[subprocess.Popen[bytes]] = [current]
    try:
        for _ in range(RESTARTS):
            time.sleep(1.0)
            replacement = stack.spawn_authz()  # binds the same port (SO_REUSEPORT)
            procs.append(replacement)
            current.send_signal(signal.SIGTERM)
            # Generous bound: ~1-2 s with the streams closed after a flush; without, the old
            # process holds them until the grace ends (and cancels them, entries in flight lost).
            assert current.wait(timeout=GRACE / 2) == 0
            current = replacement
        time.sleep(1.0)
        load.stop()
        flushed = stack.envoy.stats("grpc_access_log")
        print({k: v for k, v in flushed.items() if v})
        statuses = [s for _, s in load.results]
        ok = statuses.count(200)
        assert ok > 0
        # Every completed request settled exactly once at its real cost: lost_at_most=0.
        _assert_every_completed_request_settled(stack, ok, len(statuses) - ok)
    finally:
        load.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        stack.stop()


def test_kill_9_loses_at_most_the_entries_in_flight_and_books_stay_exact(
    redis_url: str,
    provider: FakeProvider,  # noqa: F811
) -> None:
    """kill -9 with the replacement already bound (SO_REUSEPORT): the entries the dead process had
    received but not yet written (its settle queue, the message it was reading) are lost, as ALS
    has no acknowledgement. The window is bounded: a handful of entries, never a double charge,
    and each lost one stays reserved until the sweeper expires it at its estimate (counted in
    keeptrusts_expired_reservations), so the books stay exact. The figure is printed; the bound
    asserted is generous (5 % of the requests)."""
    cfg = stack_config(
        redis_url,
        provider.url,
        enforcement={"reservation_ttl_seconds": 4, "sweep_interval_seconds": 0.5},
    )
    stack = Stack(cfg, start_service=False)
    old = stack.spawn_authz()
    stack.envoy.start()
    _wait_healthy(stack, {stack.cfg.server.grpc_port})
    stack.fund("team_engineering", 1000 * USD)
    load = Load(stack.cfg.gateway.listen_port).start()
    new: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.5)
        new = stack.spawn_authz()
        old.send_signal(signal.SIGKILL)
        old.wait(timeout=30)
        time.sleep(1.5)
        load.stop()
        statuses = [s for _, s in load.results]
        ok = statuses.count(200)
        wallet = stack.wait_settled("team:team_engineering", timeout=60)  # incl. the expiries
        entries = stack.wallets(lambda w: w.ledger(10_000))
        settles = [e for e in entries if e.op in ("settle", "expire")]
        real = [e for e in settles if e.op == "settle" and e.fields["estimated"] == "0"]
        expired = [e for e in settles if e.op == "expire"]
        print(
            f"kill -9: {len(statuses)} requests, {ok} completed, {len(real)} settled at their "
            f"real cost, {len(expired)} expired at their estimate"
        )
        assert wallet.reserved == 0
        assert len({e.fields["reservation"] for e in settles}) == len(settles), "settled twice"
        assert len(real) <= ok <= len(settles)
        assert len(expired) <= max(5, 0.05 * len(statuses))
        assert wallet.spent_total == sum(e.amount for e in settles)
        report = stack.wallets(lambda w: w.audit())
        assert report.ok, report.mismatches
    finally:
        load.stop()
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        stack.stop()
