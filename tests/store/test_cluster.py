"""A real 3-master Redis Cluster with a replica each, from deploy/redis/cluster.conf."""

from __future__ import annotations

import asyncio

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import RedisWalletStore
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
        orgs = ["acme", "globex", "initech", "umbrella", "hooli", "wonka"]
        by_master: dict[int, str] = {}
        for org in orgs:
            by_master.setdefault(cluster.node_for_slot_key(Keys(org).ledger).port, org)
        assert len(by_master) >= 2
        pair = list(by_master.values())[:2]

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
