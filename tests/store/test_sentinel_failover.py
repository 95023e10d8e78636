"""`SENTINEL FAILOVER` under paced load against a real master + replica + 3 Sentinels started from
the shipped deploy/redis configs: every served request is charged exactly, every refused one is
a store-unavailable outcome whose compensating release lands, nothing raises anything else (no
500), and the audit of the new master is ok."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.store.connection import MasterWatch, connect
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.service import WalletService
from testing.load import Load, one_request
from testing.redis_topology import SentinelTopology
from tests.wallets.support import ORG, USD, reserve_req

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinel(request: pytest.FixtureRequest) -> Iterator[SentinelTopology]:
    with SentinelTopology(replicas=request.param) as topology:
        yield topology


# One replica, as deploy/redis/redis.conf's min-replicas-to-write 1 requires (docs/REDIS.md):
# with two, the old master keeps the second replica until Sentinel reconfigures it and goes on
# taking writes that are lost (measured: ~90 served requests at 100/s, see the failover note).
@pytest.mark.parametrize("sentinel", [1], indirect=True)
def test_manual_failover_under_load_charges_every_served_request(
    sentinel: SentinelTopology,
) -> None:
    cfg = parse_config(
        {
            "organization": {"id": ORG},
            "consumer_groups": [{"name": "eng", "api_key": "kt_x", "wallet_team_id": "team_eng"}],
            "redis": {
                "url": sentinel.url,
                "mode": "sentinel",
                "sentinel_master": sentinel.MASTER_NAME,
                "socket_timeout_seconds": 0.5,
            },
        }
    )

    async def go() -> tuple[Load, WalletService, float, int, int]:
        client = connect(cfg.redis)
        watch = MasterWatch(client, interval=0.2)
        store = RedisWalletStore(client, ORG, master_watch=watch)
        svc = WalletService(store, cfg)
        watch.start()
        await svc.integrity.check()
        await svc.credit(100 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_eng", 50 * USD, "USD", "seed", "test")
        old_master = sentinel.master_port()
        load = Load()
        tasks: set[asyncio.Task[None]] = set()
        failover_at = 0.0
        started = time.monotonic()
        i = 0
        # ~100 requests/s, the failover after 1 s, load until 1 s without a refusal
        while True:
            now = time.monotonic()
            if not failover_at and now - started > 1.0:
                sentinel.failover()
                failover_at = now
            quiet = not load.refused_at or now - load.refused_at[-1] > 1.0
            if failover_at and ((now - failover_at > 3.0 and quiet) or now - failover_at > 25):
                break
            i += 1
            task = asyncio.get_running_loop().create_task(
                one_request(svc, load, 1000 + i, reserve_req(2 * USD // 1000))
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        new_master = sentinel.master_port()
        await watch.close()
        return load, svc, failover_at, old_master, new_master

    load, _svc, _failover_at, old_master, new_master = asyncio.run(go())
    assert new_master != old_master
    assert load.served > 0  # how many depends on the machine's load

    async def books() -> tuple[object, int, dict[str, int] | None]:
        client = connect(cfg.redis)
        store = RedisWalletStore(client, ORG)
        checker = WalletService(store, cfg)
        report = await checker.audit()
        reserves = [e for e in await store.ledger(100_000) if e.op == "reserve"]
        wallet = await store.wallet("team:team_eng")
        await store.close()
        return report, len(reserves), wallet

    report, reserves, wallet = asyncio.run(books())
    assert report.ok, report.mismatches  # type: ignore[attr-defined]
    assert wallet is not None
    # every served request is on the new master's books, charged exactly; refused ones are not
    assert wallet["spent_total"] == load.charged
    assert wallet["reserved"] == 0
    assert reserves >= load.served
    outage = (max(load.refused_at) - min(load.refused_at)) if load.refused_at else 0.0
    print(
        f"\nsentinel failover: served={load.served} refused(503)={load.refused} "
        f"503 window={outage:.2f}s"
    )
