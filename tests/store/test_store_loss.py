"""Store-loss detection against a real Redis: an empty restart, a credit on top of nothing, a
rollback to an older snapshot and an archive that is ahead of the ledger all fail closed
(StoreRegressed, metric, failing audit) until the store is re-armed by a restore."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from keeptrusts_authz.errors import StoreRegressed
from keeptrusts_authz.metrics.registry import set_store_regressed
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import (
    ORG,
    USD,
    funded,
    make_config,
    reserve_req,
    run,
    sync_client,
    wallet_service,
)


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("keeptrusts_store_regressed", {"org": ORG})


def _flush(url: str) -> None:
    client = sync_client(url)
    try:
        client.flushall()
    finally:
        client.close()


class Archived:
    """An ArchiveWatermark holding a fixed last archived id (what PostgreSQL would answer)."""

    def __init__(self, last: str | None) -> None:
        self.last = last

    async def last_archived_id(self, org: str) -> str | None:
        assert org == ORG
        return self.last


def test_warn_overdraft_never_creates_a_wallet(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            r = await svc.reserve(
                reserve_req(25 * USD, ("team:team_ops",), "warn", overdraft="team:team_ops")
            )
            assert (r.outcome, r.wallet) == ("blocked", None)
            assert await svc.store.wallet("team:team_ops") is None
            assert (await svc.audit()).ok

    run(go())


def test_empty_restart_fails_closed_until_rearmed(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as plain:
            # as the composition root builds it: every verdict goes to the metric
            svc = WalletService(
                plain.store, make_config(redis_url), on_integrity=set_store_regressed
            )
            await funded(svc, team_eng=10 * USD)
            assert (await svc.integrity.check()).ok
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"
            _flush(redis_url)  # Redis restarted without persistence
            with pytest.raises(StoreRegressed) as err:
                await svc.reserve(reserve_req(1 * USD))
            assert err.value.http_status == 503 and err.value.code == "store_regressed"
            assert _gauge() == 1
            # nothing was written by the refused reserve (no wallet, no ledger)
            client = sync_client(redis_url)
            assert client.dbsize() == 0
            client.close()
            # the hot path refuses without asking Redis again
            with pytest.raises(StoreRegressed):
                await svc.reserve(reserve_req(1 * USD))
            report = await svc.audit()
            assert not report.ok
            assert "epoch marker missing" in report.mismatches[0]
            # a credit on top of the empty store arms a NEW epoch: still regressed
            await funded(svc, team_eng=10 * USD)
            with pytest.raises(StoreRegressed):
                await svc.reserve(reserve_req(1 * USD))
            assert not (await svc.integrity.check()).ok
            # restore re-arms (origin restore): Checks are served again
            await svc.store.arm(origin="restore", replace=True)
            assert (await svc.integrity.check()).ok
            assert _gauge() == 0
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"

    run(go())


def test_reserve_detects_loss_without_a_prior_check(redis_url: str) -> None:
    """The epoch learned from the first check is enforced inside reserve.lua itself."""

    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            await svc.integrity.check()
            client = sync_client(redis_url)
            client.delete(Keys(ORG).epoch)  # only the marker is gone
            client.close()
            with pytest.raises(StoreRegressed):
                await svc.reserve(reserve_req(1 * USD))

    run(go())


async def _roll_back_past_three_reserves(svc: WalletService, redis_url: str) -> None:
    """Fund, snapshot every key, check, serve three reserves (checked), then put the snapshot
    back: the store is an older copy with the same epoch, as a stale replica would be."""
    await funded(svc, team_eng=10 * USD)
    client = sync_client(redis_url)
    try:
        keys = list(client.scan_iter("kt:*"))
        dumps = {k: client.dump(k) for k in keys if client.type(k) != "none"}
        await svc.integrity.check()
        for _ in range(3):
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"
        assert (await svc.integrity.check()).ok
        client.flushall()
        for key, blob in dumps.items():
            client.restore(key, 0, blob)
    finally:
        client.close()


def test_rollback_to_an_older_snapshot_is_detected(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await _roll_back_past_three_reserves(svc, redis_url)
            verdict = await svc.integrity.check()
            assert not verdict.ok and "rolled back" in verdict.reason
            with pytest.raises(StoreRegressed):
                await svc.reserve(reserve_req(1 * USD))

    run(go())


def test_rollback_with_writes_before_the_next_check_is_detected(redis_url: str) -> None:
    """A stale snapshot that serves a write before the next continuity check: the write moves
    the stream's last id past everything this process saw, yet the entry it saw is gone."""

    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await _roll_back_past_three_reserves(svc, redis_url)
            # The stale store still carries the same epoch: a reserve goes through before the
            # periodic check runs and XADDs a fresh (newer) id.
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"
            verdict = await svc.integrity.check()
            assert not verdict.ok and "rolled back" in verdict.reason, verdict
            with pytest.raises(StoreRegressed):
                await svc.reserve(reserve_req(1 * USD))

    run(go())


def test_archive_ahead_of_the_ledger_is_detected_by_a_fresh_process(redis_url: str) -> None:
    async def go() -> None:
        cfg = make_config(redis_url)
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            last = (await svc.store.marker()).last_id
        ms, _, _ = last.partition("-")
        ahead = f"{int(ms) + 1000}-0"
        async with wallet_service(redis_url) as plain:
            fresh = WalletService(plain.store, cfg, archive=Archived(ahead))
            verdict = await fresh.integrity.check()
            assert not verdict.ok and ahead in verdict.reason
            with pytest.raises(StoreRegressed):
                await fresh.reserve(reserve_req(1 * USD))
            assert not (await fresh.audit()).ok
            # archive caught up with the ledger: fine
            ok = WalletService(plain.store, cfg, archive=Archived(last))
            assert (await ok.integrity.check()).ok
        _flush(redis_url)
        async with wallet_service(redis_url) as plain:
            # empty Redis, but PostgreSQL holds history: a lost store, not a new org
            fresh = WalletService(plain.store, cfg, archive=Archived(last))
            verdict = await fresh.integrity.check()
            assert not verdict.ok and "marker missing" in verdict.reason
            client = sync_client(redis_url)
            assert not client.exists(Keys(ORG).epoch)  # never armed over a lost store
            client.close()
            # restore rebuilt the wallets up to `last` and re-armed with that floor
            await plain.store.arm(origin="restore", hwm_floor=last, replace=True)
            assert (await fresh.integrity.check()).ok

    run(go())


def test_a_new_org_is_armed_by_its_first_check(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            assert (await svc.integrity.check()).ok
            assert svc.integrity.epoch.startswith("e_")
            await funded(svc, team_eng=10 * USD)  # the credit keeps the armed epoch
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"
            assert (await svc.audit()).ok

    run(go())
