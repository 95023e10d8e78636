"""The checkpointed audit on real Redis + PostgreSQL: checkpoint + archived tail + Redis tail is
ok and equals a full replay; a Redis that lost entries or wallets fails naming the gap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.wallets.models import SettleRequest
from tests.ledger.test_archiver import _archiver, _redis_ids
from tests.wallets.support import ORG, USD, funded, reserve_req, run, sync_client, wallet_service


async def _traffic(redis_url: str, n: int) -> None:
    async with wallet_service(redis_url) as svc:
        for _ in range(n):
            req = reserve_req(2 * USD)
            await svc.reserve(req)
            await svc.settle(
                SettleRequest(
                    reservation_id=req.reservation_id,
                    cost=1 * USD,
                    estimated=False,
                    label_model="m",
                )
            )
        await svc.reserve(reserve_req(3 * USD))  # one left open


async def _archive_once(redis_url: str, pg_url: str, tail: int) -> None:
    arch = await _archiver(redis_url, pg_url, tail=tail)
    assert (await arch.run_once()).acted


def _audit(redis_url: str, pg_url: str, full: bool = False):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with wallet_service(redis_url) as svc:
            return await svc.audit(ArchiveStore(pg_url), full=full)

    return run(go())


def test_checkpoint_plus_tails_is_ok_and_equals_full(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))

    async def seed() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=100 * USD)

    run(seed())
    run(_traffic(redis_url, 5))
    run(_archive_once(redis_url, postgres_url, tail=3))
    first = _audit(redis_url, postgres_url)  # writes the checkpoint at the high-water mark
    assert first.ok, first.mismatches
    cp = run(ArchiveStore(postgres_url).last_snapshot(ORG))
    assert cp is not None and cp.upto == run(ArchiveStore(postgres_url).last_archived_id(ORG))
    # More traffic: some archived after the checkpoint, some only in Redis.
    run(_traffic(redis_url, 4))
    run(_archive_once(redis_url, postgres_url, tail=3))
    run(_traffic(redis_url, 2))
    assert len(_redis_ids(redis_url)) > 3
    tail = _audit(redis_url, postgres_url)
    full = _audit(redis_url, postgres_url, full=True)
    assert tail.ok and full.ok, (tail.mismatches, full.mismatches)
    assert tail.entries == full.entries
    # A wrong wallet is caught from the checkpoint path too.
    sync_client(redis_url).hset(f"kt:{{{ORG}}}:w:team:team_eng", "balance", 1)
    bad = _audit(redis_url, postgres_url)
    assert not bad.ok and any("team:team_eng: balance" in m for m in bad.mismatches)


def test_redis_that_lost_entries_fails_naming_the_gap(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))

    async def seed() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=100 * USD)

    run(seed())
    run(_traffic(redis_url, 3))
    run(_archive_once(redis_url, postgres_url, tail=100))
    high = run(ArchiveStore(postgres_url).last_archived_id(ORG))
    # Rolled back: the newest archived entries are gone from Redis (a stale snapshot).
    r = sync_client(redis_url)
    for entry_id in _redis_ids(redis_url)[-2:]:
        r.xdel(f"kt:{{{ORG}}}:ledger", entry_id)
    report = _audit(redis_url, postgres_url)
    assert not report.ok
    assert any("ledger gap" in m and str(high) in m for m in report.mismatches)


def test_empty_redis_fails_naming_missing_wallets(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(migrate(postgres_url))

    async def seed() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=100 * USD)

    run(seed())
    run(_archive_once(redis_url, postgres_url, tail=100))
    sync_client(redis_url).flushall()  # restarted empty
    cfg = tmp_path / "kt.yaml"
    cfg.write_text(
        "organization: {id: acme, currency: USD}\n"
        f"redis: {{url: '{redis_url}'}}\nledger: {{postgres_url: '{postgres_url}'}}\n"
    )
    assert main(["audit", "--config", str(cfg), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert any("wallets missing" in m for m in out["mismatches"])
    assert any("ledger gap" in m for m in out["mismatches"])
    assert main(["audit", "--full", "--config", str(cfg)]) == 1
