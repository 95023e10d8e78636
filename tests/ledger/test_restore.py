"""`keeptrusts-authz restore` on real Redis + real PostgreSQL: after an empty restart or a rollback
to a stale snapshot (even one that served writes before it was noticed), restore rebuilds every
wallet, the usage counters, the daily burn, the period states, the open reservations and the
ledger tail exactly as they were, re-arms the store, and the audit passes. It refuses a store that
is not regressed unless --force, and a second run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.errors import StoreRegressed
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import SettleRequest
from tests.ledger.test_archiver import _archiver
from tests.wallets.support import ORG, USD, funded, reserve_req, run, sync_client, wallet_service

K = Keys(ORG)
FAMILIES = ("w:", "usage", "burn:", "pw:", "wallets")


def _config(tmp_path: Path, redis_url: str, pg_url: str, tail: int = 5) -> str:
    cfg = tmp_path / "kt.yaml"
    cfg.write_text(
        "organization: {id: acme, currency: USD}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        f"ledger: {{postgres_url: '{pg_url}', redis_tail_entries: {tail}}}\n"
    )
    return str(cfg)


def books(redis_url: str) -> dict[str, Any]:
    """Every restored key family as Redis holds it (open reservations without their deadline)."""
    r = sync_client(redis_url)
    out: dict[str, Any] = {}
    try:
        for key in sorted(r.scan_iter(K.prefix + "*")):
            rest = key[len(K.prefix) :]
            if rest == "wallets":
                out[rest] = sorted(r.smembers(key))
            elif rest.startswith(FAMILIES):
                out[rest] = r.hgetall(key)
            elif rest.startswith("r:") and rest != "r:deadlines":
                h = r.hgetall(key)
                if h.get("state") == "open":
                    out[rest] = {f: v for f, v in h.items() if f not in ("deadline_ms",)}
        out["open"] = sorted(r.zrange(K.deadlines, 0, -1))
    finally:
        r.close()
    return out


async def _traffic(redis_url: str, n: int, *, open_left: int = 1) -> list[str]:
    """n reserve+settle pairs (one estimated, later corrected), a reclaim, a transfer, a period
    boundary and `open_left` reservations left open; returns the open ids."""
    async with wallet_service(redis_url) as svc:
        first = None
        for i in range(n):
            req = reserve_req(2 * USD)
            await svc.reserve(req)
            await svc.settle(
                SettleRequest(
                    reservation_id=req.reservation_id,
                    cost=1 * USD + i,
                    estimated=i == 0,
                    input_tokens=10 + i,
                    output_tokens=5,
                    model="gpt-4o-2024-08-06",
                    label_model="gpt-4o",
                )
            )
            first = first or req.reservation_id
        assert first is not None
        await svc.settle(  # late real usage replaces the first estimate: a `correct` entry
            SettleRequest(
                reservation_id=first, cost=USD // 2, estimated=False, label_model="gpt-4o"
            )
        )
        await svc.reclaim("team:team_eng", 1 * USD, "USD", "back", "t")
        # A user wallet of a team: its `team` field comes back from the entry's user_team.
        await svc.allocate("user:alice", 1 * USD, "USD", "u", "t", team="team_eng")
        await svc.transfer("team:team_eng", "team:team_support", 2 * USD, "USD", "m", "t")
        store = svc.store
        assert isinstance(store, RedisWalletStore)
        await store.apply_period_boundary(
            "team:team_ops",
            "2026-12",
            rollover="carry",
            amount=3 * USD,
            carry_cap=0,
            period_start_ms=0,
            actor="t",
            description="period",
        )
        opened: list[str] = []
        for _ in range(open_left):
            req = reserve_req(3 * USD)
            assert (await svc.reserve(req)).outcome == "reserved"
            opened.append(req.reservation_id)
        return opened


async def _seed(redis_url: str) -> None:
    async with wallet_service(redis_url) as svc:
        await funded(svc, team_eng=100 * USD)


def _archive(redis_url: str, pg_url: str, tail: int = 5) -> None:
    async def go() -> None:
        arch = await _archiver(redis_url, pg_url, tail=tail)
        assert (await arch.run_once()).acted

    run(go())


def _restore(cfg: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["restore", "--config", cfg, "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def _strip_deadline(b: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ({f: v for f, v in h.items() if f != "restored_ms"} if k.startswith("r:") else h)
        for k, h in b.items()
    }


def test_empty_restart_restore_rebuilds_everything_exactly(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url))
    opened = run(_traffic(redis_url, 6, open_left=2))
    cfg = _config(tmp_path, redis_url, postgres_url)
    _archive(redis_url, postgres_url)
    before = books(redis_url)
    assert main(["audit", "--config", cfg]) == 0
    # Not regressed: refused, nothing written.
    code, out = _restore(cfg, capsys)
    assert code == 4 and out["error"]["type"] == "restore_refused"
    assert books(redis_url) == before

    sync_client(redis_url).flushall()  # Redis without persistence restarted empty
    assert main(["audit", "--config", cfg]) == 1
    code, out = _restore(cfg, capsys)
    assert code == 0, out
    assert out["audit"]["ok"] and out["open_reservations"] == 2 and out["dropped"] == []
    assert out["high_water"] == run(ArchiveStore(postgres_url).last_archived_id(ORG))
    after = books(redis_url)
    assert _strip_deadline(after) == before
    assert main(["audit", "--config", cfg]) == 0
    marker = sync_client(redis_url).hgetall(K.epoch)
    assert marker["origin"] == "restore" and marker["hwm_floor"] == out["high_water"]
    # The ledger tail is back with its original ids (listings and continuity).
    assert sync_client(redis_url).xlen(K.ledger) == 5
    restores = run(ArchiveStore(postgres_url).restores(ORG))
    assert len(restores) == 1 and restores[0]["epoch"] == out["epoch"]

    # The open reservations settle exactly after the restore; new reserves work.
    async def after_restore() -> None:
        async with wallet_service(redis_url) as svc:
            assert (await svc.integrity.check()).ok
            res = await svc.settle(SettleRequest(opened[0], cost=USD, estimated=False))
            assert res.outcome == "settled" and res.cost == USD
            assert (await svc.reserve(reserve_req(1 * USD))).outcome == "reserved"

    run(after_restore())
    assert main(["audit", "--config", cfg]) == 0

    # Idempotent: a forced second run gives the same books.
    again = books(redis_url)
    code, out2 = _restore(cfg, capsys, "--force")
    assert code == 0 and out2["audit"]["ok"]
    assert _strip_deadline(books(redis_url)) == _strip_deadline(again)


def test_stale_snapshot_that_kept_serving_is_restored_exactly(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url))
    run(_traffic(redis_url, 2, open_left=0))
    r = sync_client(redis_url)
    dumps = {k: r.dump(k) for k in r.scan_iter("kt:*")}  # the RDB snapshot
    settled_after_snapshot = run(_traffic(redis_url, 3, open_left=1))
    cfg = _config(tmp_path, redis_url, postgres_url)
    _archive(redis_url, postgres_url)
    archived_books = books(redis_url)

    # Redis comes back from the older snapshot and serves a reserve + settle before anyone
    # notices (same epoch marker: the reserve script lets it through).
    r.flushall()
    for key, blob in dumps.items():
        r.restore(key, 0, blob)

    async def stale_writes() -> int:
        async with wallet_service(redis_url) as svc:
            req = reserve_req(1 * USD)
            assert (await svc.reserve(req)).outcome == "reserved"
            await svc.settle(SettleRequest(req.reservation_id, cost=USD // 4, estimated=False))
            return USD // 4

    charged = run(stale_writes())

    # The archiver sees the gap and copies nothing from the stale books.
    async def archiver_pauses() -> None:
        arch = await _archiver(redis_url, postgres_url, tail=5)
        res = await arch.run_once()
        assert res.gap and res.archived == 0

    run(archiver_pauses())
    assert main(["audit", "--config", cfg]) == 1
    code, out = _restore(cfg, capsys)
    assert code == 0, out
    assert out["audit"]["ok"], out["audit"]
    assert out["carried"] == 2 and out["rewritten"] == 2
    after = books(redis_url)
    # The archived books plus exactly the two stale-served entries' effect.
    eng = "w:team:team_eng"
    assert int(after[eng]["spent_total"]) == int(archived_books[eng]["spent_total"]) + charged
    assert int(after[eng]["balance"]) == int(archived_books[eng]["balance"]) - charged
    assert settled_after_snapshot[0] in after["open"]
    # The carried entries get archived by the next pass; the audit from genesis is ok.
    _archive(redis_url, postgres_url)
    assert main(["audit", "--full", "--config", cfg]) == 0


def test_regressed_settle_is_held_not_dropped(redis_url: str, postgres_url: str) -> None:
    """A settle arriving after the store lost its reservation raises StoreRegressed (the
    settler keeps it) instead of answering `unknown` and losing the charge."""
    run(migrate(postgres_url))
    run(_seed(redis_url))
    opened = run(_traffic(redis_url, 1, open_left=1))
    _archive(redis_url, postgres_url)

    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            assert (await svc.integrity.check()).ok
            sync_client(redis_url).flushall()
            with pytest.raises(StoreRegressed):
                await svc.settle_batch([SettleRequest(opened[0], cost=USD, estimated=False)])
            # A healthy store: an unknown id is just unknown.

    run(go())

    async def healthy() -> None:
        sync_client(redis_url).flushall()
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=USD)
            res = await svc.settle_batch([SettleRequest("r_nope", cost=USD, estimated=False)])
            assert res[0].outcome == "unknown"

    run(healthy())
