"""A real 3-master Redis Cluster with a replica each, from deploy/redis/cluster.conf."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.observability import ObservabilityStore
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.store.tickets import RedisTicketStore
from keeptrusts_authz.wallets.service import WalletService
from testing.load import Load, one_request
from testing.redis_topology import ClusterTopology
from tests.wallets.support import USD, reserve_req

pytestmark = pytest.mark.integration


def _cfg(url: str, org: str) -> Config:
    return parse_config(
        {
            "organization": {"id": org},
            "consumer_groups": [{"name": "eng", "api_key": "kt_x", "wallet_team_id": "team_eng"}],
            "redis": {"url": url, "mode": "cluster", "socket_timeout_seconds": 0.5},
        }
    )


def test_two_organizations_on_different_masters_keep_exact_books() -> None:
    """The real cluster client against a real 3-master cluster with replicas: each org's
    scripts run in its own slot, books exact, epoch marker armed, audits ok."""
    with ClusterTopology(replicas=True) as cluster:
        pair = cluster.organizations_on_distinct_masters(2)

        async def go() -> None:
            client = connect(_cfg(cluster.url, pair[0]).redis)
            for org in pair:
                svc = WalletService(RedisWalletStore(client, org), _cfg(cluster.url, org))
                assert (await svc.integrity.check()).ok and svc.integrity.epoch
                await svc.credit(100 * USD, "USD", "seed", "test")
                await svc.allocate("team:team_eng", 50 * USD, "USD", "seed", "test")
                load = Load()
                for start in range(0, 200, 10):
                    await asyncio.gather(
                        *(
                            one_request(svc, load, 1000 + start + i, reserve_req(2 * USD // 1000))
                            for i in range(10)
                        )
                    )
                assert (load.served, load.refused) == (200, 0)
                wallet = await svc.store.wallet("team:team_eng")
                assert wallet is not None and wallet["spent_total"] == load.charged
                report = await svc.audit()
                assert report.ok, report.mismatches
            await client.aclose()

        asyncio.run(go())


def test_200_concurrent_reserves_through_one_cluster_client_are_all_served() -> None:
    """redis-py's async cluster client refuses (MaxConnectionsError, a ConnectionError) any call
    beyond `max_connections` per node (default 100) instead of waiting for a free connection:
    200 concurrent reserves used to get about half refused as StoreUnavailable."""
    with ClusterTopology(replicas=False) as cluster:

        async def go() -> None:
            cfg = _cfg(cluster.url, "acme")
            client = connect(cfg.redis)
            svc = WalletService(RedisWalletStore(client, "acme"), cfg)
            assert (await svc.integrity.check()).ok
            await svc.credit(100 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_eng", 50 * USD, "USD", "seed", "test")
            load = Load()
            await asyncio.gather(
                *(
                    one_request(svc, load, 1000 + i, reserve_req(2 * USD // 1000))
                    for i in range(200)
                )
            )
            assert (load.served, load.refused) == (200, 0)
            wallet = await svc.store.wallet("team:team_eng")
            assert wallet is not None and wallet["spent_total"] == load.charged
            assert (await svc.audit()).ok
            await client.aclose()

        asyncio.run(go())


def test_kill_9_of_one_orgs_master_under_paced_load() -> None:
    """kill -9 of the master holding org A's slot, with replicas, under paced load on org A and
    org B through one cluster client (as one service process): every failover exception is a
    store-unavailable outcome with its compensating release (anything else raises out of
    `one_request` and fails the test: the 500s of the issue), every served request is charged
    exactly, org B is refused at most while the cluster itself is down, both audits ok. Bounded:
    every call has a timeout, the load stops 2 s after A is served again or after 30 s."""
    with ClusterTopology(replicas=True) as cluster:
        org_a, org_b = cluster.organizations_on_distinct_masters(2)
        victim = cluster.node_for_slot_key(Keys(org_a).ledger)

        async def go() -> dict[str, Load]:
            client = connect(_cfg(cluster.url, org_a).redis)
            svcs = {
                o: WalletService(RedisWalletStore(client, o), _cfg(cluster.url, o))
                for o in (org_a, org_b)
            }
            for svc in svcs.values():
                assert (await svc.integrity.check()).ok
                await svc.credit(100 * USD, "USD", "seed", "test")
                await svc.allocate("team:team_eng", 50 * USD, "USD", "seed", "test")
            loads = {o: Load() for o in svcs}
            tasks: set[asyncio.Task[None]] = set()
            started = time.monotonic()
            killed_at = 0.0
            i = 0
            while True:
                now = time.monotonic()
                if not killed_at and now - started > 1.5:
                    victim.kill()
                    killed_at = now
                a = loads[org_a]
                recovered = killed_at and a.refused_at and now - a.refused_at[-1] > 2.0
                if (killed_at and now - killed_at > 30) or recovered:
                    break
                i += 1
                for org, svc in svcs.items():
                    task = asyncio.get_running_loop().create_task(
                        one_request(
                            svc, loads[org], 1000 + i, reserve_req(2 * USD // 1000), timeout=5
                        )
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(0.04)  # ~25 requests/s per org
            await asyncio.wait_for(asyncio.gather(*tasks), 90)
            for org, svc in svcs.items():
                wallet = await svc.store.wallet("team:team_eng")
                assert wallet is not None
                assert wallet["spent_total"] == loads[org].charged, org
                assert wallet["reserved"] == 0, org
                report = await svc.audit()
                assert report.ok, (org, report.mismatches)
            await client.aclose()
            return loads

        loads = asyncio.run(asyncio.wait_for(go(), 150))
        a, b = loads[org_a], loads[org_b]
        # Counts depend on the machine's load; only their shape is asserted.
        assert a.refused > 0 and a.served > 0 and b.served > 0
        print(
            f"\ncluster kill -9: org A served={a.served} refused={a.refused} "
            f"({a.outage_seconds:.1f}s); org B served={b.served} refused={b.refused} "
            f"({b.outage_seconds:.1f}s)"
        )


def test_a_cluster_with_no_node_reachable_is_store_unavailable_for_every_call() -> None:
    """After a connection error redis-py's cluster client rediscovers the cluster when the next
    pipeline OPENS (`ClusterPipeline.__aenter__`), before any translated await: with no node
    reachable (the whole cluster restarting, the service cut off from it) that raised a raw
    RedisClusterException out of the store. It ended the store-integrity loop for good (it
    survives only StoreUnavailable), reached the alert engine as an unexpected error and the
    Check's period read as a non-store error. Every call must be store-unavailable instead."""
    with ClusterTopology(replicas=False) as cluster:

        async def go() -> None:
            cfg = _cfg(cluster.url, "acme")
            client = connect(cfg.redis)
            store = RedisWalletStore(client, "acme")
            svc = WalletService(store, cfg)
            observability = ObservabilityStore(client, "acme")
            tickets = RedisTicketStore(client, "acme")
            assert (await svc.integrity.check()).ok
            await svc.credit(100 * USD, "USD", "seed", "test")
            for node in cluster.nodes:
                node.kill()
            calls: list[Callable[[], Awaitable[object]]] = [
                store.marker,
                lambda: store.period_states(["team:team_eng"]),
                store.wallets,
                store.wallet_teams,
                store.audit_snapshot,
                lambda: observability.wallets(["team:team_eng"]),
                tickets.list,
                lambda: svc.reserve(reserve_req(USD // 1000)),
            ]
            for _ in range(2):  # each call once after another call's error set `_initialize`
                for call in calls:
                    with pytest.raises(StoreUnavailable):
                        await call()
            await svc.integrity.check_quietly()  # skipped, not raised
            svc.integrity.start(0.05)
            await asyncio.sleep(1.0)
            task = svc.integrity._task
            assert task is not None and not task.done(), task
            await svc.integrity.close()
            await client.aclose()

        asyncio.run(go())
