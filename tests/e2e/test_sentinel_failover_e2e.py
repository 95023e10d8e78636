"""`SENTINEL FAILOVER` under paced load through the real Envoy and the real service in Sentinel
mode (master + 1 replica + 3 Sentinels from the shipped deploy/redis configs): every served
request is charged exactly its cost (one settle each in the new master's ledger), refused ones
are 503s that charge nothing, no 500, and the audit of the new master is ok."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from keeptrusts_authz.cli.main import main
from testing.load import HttpLoad
from testing.redis_topology import SentinelTopology
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
CHAT = "/v1/chat/completions"
TEAM = "team:team_engineering"
KEY = "kt_cg_engineering_prod"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_sentinel_failover_through_envoy_charges_every_served_request(
    provider: FakeProvider,
) -> None:
    with SentinelTopology(replicas=1) as sentinel:
        cfg = stack_config(
            sentinel.url,
            provider.url,
            redis={
                "url": sentinel.url,
                "mode": "sentinel",
                "sentinel_master": sentinel.MASTER_NAME,
                "socket_timeout_seconds": 0.5,
            },
        )
        with Stack(cfg) as stack:
            stack.fund("team_engineering", 1000 * USD)
            status, _, _ = stack.post(CHAT, BODY, key=KEY)
            assert status == 200
            cost = stack.wait_settled(TEAM).spent_total
            assert cost > 0
            provider.clear()
            old_master = sentinel.master_port()
            load = HttpLoad(stack.url + CHAT, BODY, KEY, rate=30).start()
            try:
                time.sleep(2.0)
                sentinel.failover()
                failover_at = time.time()
                _wait(lambda: sentinel.master_port() != old_master, 30, "the new master")
                _wait(
                    lambda: load.count(200, since=failover_at + 1.0) >= 10,
                    90,  # a loaded 2-core machine: Sentinel's failover + resync can take long
                    "serving on the new master",
                )
            finally:
                load.stop()
            wallet = stack.wait_settled(TEAM, timeout=20)
            code = main(["audit", "--config", str(stack.config_path)])

            async def ledger(w):  # type: ignore[no-untyped-def]
                return [e async for e in w.store.iter_ledger()]

            entries = stack.wallets(ledger)

    assert code == 0
    served = load.served()
    statuses: dict[int, int] = {}
    for s in load.sent:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    assert all(s.status in (200, 503) for s in load.sent), statuses  # no 500, no client error
    # Envoy strips every x-keeptrusts-* header before the provider, so requests are matched by
    # count: one settle per served request (+ the probe), each exactly the cost, none estimated.
    settles = [e for e in entries if e.op == "settle"]
    assert len({e.fields["reservation"] for e in settles}) == len(settles), "settled twice"
    assert len(settles) == len(served) + 1, (len(settles), len(served))
    assert all(e.amount == cost and e.fields["estimated"] == "0" for e in settles)
    assert not [e for e in entries if e.op in ("expire", "correct")]
    assert wallet.reserved == 0
    assert wallet.spent_total == cost * (len(served) + 1)
    refused = [s for s in load.sent if s.status == 503]
    window = (max(s.ended for s in refused) - min(s.started for s in refused)) if refused else 0
    print(
        f"\nsentinel failover through envoy: sent={len(load.sent)} statuses={statuses} "
        f"served={len(served)} charged exactly={len(served)} 503 window={window:.1f}s"
    )
