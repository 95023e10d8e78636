"""The settlement journal on real Redis + real PostgreSQL (migration 004, ledger/journal.py,
wallets/restore.py `match_journal`, gateway/settler.py): what a lost store dropped is charged
exactly once from the journal, by restore or by the settler after it; never twice."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aredis
from prometheus_client import REGISTRY

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.gateway.settler import Settler
from keeptrusts_authz.ledger.archive_store import ArchiveStore, split_id
from keeptrusts_authz.ledger.archiver import Archiver
from keeptrusts_authz.ledger.journal import PostgresJournal
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.models import JournaledCharge, SettleRequest
from keeptrusts_authz.wallets.restore import journal_keep_ms, journal_lookback_ms
from tests.ledger.test_restore import _archive, _config, _restore, _seed, books
from tests.wallets.support import ORG, USD, reserve_req, run, sync_client, wallet_service

MODEL = "gpt-4o"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def charge(rid: str, cost: int, *, wallet: str = "team:team_eng", **kw: Any) -> JournaledCharge:
    """The journal row of a settle of `reserve_req`'s reservation (its owners and model)."""
    now = time.time_ns() // 1_000_000
    fields: dict[str, Any] = {
        "reservation_id": rid,
        "wallet": wallet,
        "team": "team_eng",
        "group": "engineering",
        "user": "alice",
        "model": MODEL,
        "label_model": MODEL,
        "cost": cost,
        "estimated": False,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 0,
        "admitted_ms": now - 1000,
        "ended_ms": now,
        "open_until_ms": now + 60_000,
    }
    fields.update(kw)
    return JournaledCharge(**fields)


def settle_of(c: JournaledCharge) -> SettleRequest:
    return c.settle_request()


def ledger_rows(pg_url: str, op: str = "settle") -> list[dict[str, str]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT fields FROM ledger_entries WHERE org = %s AND op = %s", (ORG, op)
        ).fetchall()
    return [r[0] for r in rows]


def test_journal_records_each_reservation_once_and_is_append_only(postgres_url: str) -> None:
    run(migrate(postgres_url))
    journal = PostgresJournal(postgres_url)

    async def go() -> None:
        a, b = charge("r_a", USD), charge("r_b", 2 * USD, estimated=True)
        assert await journal.record(ORG, [a, b]) == {"r_a", "r_b"}
        # A repeated access-log entry finds its row: not journaled now, the first row kept.
        assert await journal.record(ORG, [charge("r_a", 9 * USD), charge("r_c", 3)]) == {"r_c"}
        assert await journal.record("other-org", [charge("r_a", 1)]) == {"r_a"}
        rows = {c.reservation_id: c for c in await journal.since(ORG, 0)}
        assert set(rows) == {"r_a", "r_b", "r_c"}
        assert rows["r_a"].cost == USD and rows["r_b"].estimated
        assert rows["r_a"].team == "team_eng" and rows["r_a"].user == "alice"
        assert rows["r_a"].received_ms > 0
        assert await journal.since(ORG, rows["r_c"].received_ms + 1) == []
        await journal.close()

    run(go())
    with (
        psycopg.connect(postgres_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        conn.execute("UPDATE settlement_journal SET cost = 0")


def test_restore_books_what_the_journal_holds_and_the_rebuilt_books_lack(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Open in the rebuilt books -> settled at the journaled cost; unknown (its reserve died) ->
    a recovered settle; closed in the archive -> nothing; a second restore charges nothing."""
    run(migrate(postgres_url))
    run(_seed(redis_url))
    cfg = _config(tmp_path, redis_url, postgres_url)
    journal = PostgresJournal(postgres_url)
    closed_c, open_a, lost_b = charge("r_c", USD // 4), charge("r_a", USD), charge("r_b", USD // 2)
    ghost = charge("r_g", USD, wallet="team:team_ghost")

    async def reserve_and_settle(c: JournaledCharge, *, settle: bool = True) -> None:
        async with wallet_service(redis_url) as svc:
            res = await svc.reserve(reserve_req(2 * USD, reservation_id=c.reservation_id))
            assert res.outcome == "reserved"
            if settle:
                await journal.record(ORG, [c])
                assert (await svc.settle(settle_of(c))).outcome == "settled"

    run(reserve_and_settle(closed_c))
    run(reserve_and_settle(open_a, settle=False))
    _archive(redis_url, postgres_url)  # r_c closed, r_a reserved in the archive

    async def after_archive() -> None:
        await journal.record(ORG, [open_a, ghost])
        async with wallet_service(redis_url) as svc:
            assert (await svc.settle(settle_of(open_a))).outcome == "settled"
        await journal.close()

    run(after_archive())
    run(reserve_and_settle(lost_b))  # reserve and settle of r_b: Redis only
    before = books(redis_url)
    eng = before["w:team:team_eng"]

    sync_client(redis_url).flushall()  # the store is lost
    code, out = _restore(cfg, capsys)
    assert code == 0, out
    assert out["audit"]["ok"], out["audit"]
    assert out["recovered"] == 2 and out["recovered_micros"] == USD + USD // 2
    assert out["journal_rows"] == 4
    assert len(out["unrecovered"]) == 1 and "r_g" in out["unrecovered"][0]
    after = books(redis_url)
    # The books as they were before the loss: wallets, usage counters, daily burn.
    assert after["w:team:team_eng"] == eng
    assert after["usage"] == before["usage"]
    assert {k: v for k, v in after.items() if k.startswith("burn:")} == {
        k: v for k, v in before.items() if k.startswith("burn:")
    }
    assert after["open"] == []
    # The lost reservation's record is back closed, so a retried settle charges nothing.
    rec = sync_client(redis_url).hgetall(f"kt:{{{ORG}}}:r:r_b")
    assert rec["state"] == "settled" and rec["recovered"] == "1" and rec["amount"] == "0"

    async def retried() -> None:
        async with wallet_service(redis_url) as svc:
            for c in (open_a, lost_b):
                assert (await svc.settle(settle_of(c))).outcome == "already_closed"
                assert (await svc.recover(c)).outcome == "already_closed"

    run(retried())

    # Again (forced): the journal's rows are closed now; nothing is charged twice.
    code, out = _restore(cfg, capsys, "--force")
    assert code == 0 and out["audit"]["ok"] and out["recovered"] == 0
    assert books(redis_url)["w:team:team_eng"] == eng
    # Archived, the recovered settle replays (audit from genesis), and a restore from that
    # archive knows the reservation closed.
    _archive(redis_url, postgres_url)
    recovered = [f for f in ledger_rows(postgres_url) if f.get("recovered") == "1"]
    assert [(f["reservation"], f["reserved"], f["cost"]) for f in recovered] == [
        ("r_b", "0", str(USD // 2))
    ]
    assert main(["audit", "--full", "--config", cfg]) == 0
    sync_client(redis_url).flushall()
    code, out = _restore(cfg, capsys)
    assert code == 0 and out["audit"]["ok"] and out["recovered"] == 0
    assert books(redis_url)["w:team:team_eng"] == eng


def _settler(redis_url: str, journal: PostgresJournal) -> Any:
    """A started Settler on a fresh WalletService (an async context manager)."""

    class _Ctx:
        async def __aenter__(self) -> Settler:
            self._svc_cm = wallet_service(redis_url)
            svc = await self._svc_cm.__aenter__()
            self.settler = Settler(svc, max_delay=0.001, journal=journal)
            self.settler.start()
            return self.settler

        async def __aexit__(self, *exc: object) -> None:
            await self.settler.close()
            await self._svc_cm.__aexit__(None, None, None)

    return _Ctx()


def test_settler_books_a_lost_reservation_once_after_restore(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A long request admitted before the loss ends after the restore: Redis answers `unknown`,
    the settler journaled it just now and it could still be open -> recovered, once. A repeated
    entry, an old one, or a reservation unknown to the journal are never charged."""
    run(migrate(postgres_url))
    run(_seed(redis_url))
    cfg = _config(tmp_path, redis_url, postgres_url)
    _archive(redis_url, postgres_url)
    long_one = charge("r_long", USD)
    old = charge("r_old", USD, open_until_ms=time.time_ns() // 1_000_000 - 1)
    seen = charge("r_seen", USD)  # journaled before: a repeat of an entry settled long ago

    async def admit() -> None:
        async with wallet_service(redis_url) as svc:
            for c in (long_one, old, seen):
                await svc.reserve(reserve_req(2 * USD, reservation_id=c.reservation_id))

    run(admit())
    sync_client(redis_url).flushall()  # lost with both reserves, never archived
    code, out = _restore(cfg, capsys)
    assert code == 0 and out["audit"]["ok"] and out["recovered"] == 0
    eng = books(redis_url)["w:team:team_eng"]
    recovered_before = metric("keeptrusts_settlements_total", outcome="recovered")

    async def settle_after_restore() -> None:
        journal = PostgresJournal(postgres_url)
        await journal.record(ORG, [seen])
        async with _settler(redis_url, journal) as settler:
            settler.submit(settle_of(seen), None, seen)  # not journaled now: not believed
            settler.submit(settle_of(long_one), None, long_one)
            settler.submit(settle_of(old), None, old)  # past its open window: not believed
            settler.submit(SettleRequest("r_none", USD, estimated=False))  # not journaled
            assert await settler.flush()
            settler.submit(settle_of(long_one), None, long_one)  # a repeated entry
            assert await settler.flush()
        await journal.close()

    run(settle_after_restore())
    assert metric("keeptrusts_settlements_total", outcome="recovered") == recovered_before + 1
    after = books(redis_url)["w:team:team_eng"]
    assert int(after["spent_total"]) == int(eng["spent_total"]) + USD
    assert int(after["balance"]) == int(eng["balance"]) - USD
    assert main(["audit", "--config", cfg]) == 0


def test_held_batch_is_charged_by_restore_not_twice_by_the_settler(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The settler journals a batch, meets the regressed store and holds it; restore (reading the
    journal after the rebuild) books it; the held batch's retry charges nothing again."""
    run(migrate(postgres_url))
    run(_seed(redis_url))
    cfg = _config(tmp_path, redis_url, postgres_url)
    _archive(redis_url, postgres_url)
    lost = charge("r_lost", USD)

    async def go() -> None:
        journal = PostgresJournal(postgres_url)
        async with wallet_service(redis_url) as svc:
            await svc.reserve(reserve_req(2 * USD, reservation_id=lost.reservation_id))
            assert (await svc.integrity.check()).ok
            sync_client(redis_url).flushall()
            settler = Settler(svc, max_delay=0.001, journal=journal)
            settler.start()
            settler.submit(settle_of(lost), None, lost)
            assert not await settler.flush(timeout=1.0)  # held: the store is regressed
            assert [c.reservation_id for c in await journal.since(ORG, 0)] == ["r_lost"]
            code, out = await asyncio.to_thread(_restore, cfg, capsys)
            assert code == 0 and out["recovered"] == 1, out
            await svc.integrity.check_quietly()
            assert await settler.flush(timeout=15.0)
            await settler.close()
        await journal.close()

    run(go())
    spent = int(books(redis_url)["w:team:team_eng"]["spent_total"])
    assert spent == USD
    assert main(["audit", "--config", cfg]) == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgres_down_never_blocks_settlement(redis_url: str) -> None:
    """The journal unreachable: the batch settles in Redis all the same (nothing lost while Redis
    holds its books), counted in keeptrusts_settlement_journal_failures_total."""
    down = PostgresJournal(f"postgresql://kt@127.0.0.1:{_closed_port()}/kt", timeout=0.5)
    failures = metric("keeptrusts_settlement_journal_failures_total")
    ids: list[str] = []

    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await svc.credit(100 * USD, "USD", "seed", "t")
            await svc.allocate("team:team_eng", 10 * USD, "USD", "seed", "t")
            settler = Settler(svc, max_delay=0.001, journal=down)
            settler.start()
            for _ in range(3):
                req = reserve_req(2 * USD)
                assert (await svc.reserve(req)).outcome == "reserved"
                ids.append(req.reservation_id)
                c = charge(req.reservation_id, USD)
                settler.submit(settle_of(c), None, c)
            assert await settler.flush()
            await settler.close()
            wallet = await svc.wallet("team:team_eng")
            assert wallet.spent_total == 3 * USD and wallet.reserved == 0

    run(go())
    assert metric("keeptrusts_settlement_journal_failures_total") == failures + 3


def test_restore_reports_an_unreadable_journal_and_keeps_the_rebuilt_books(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The books are rebuilt before the journal is read: a journal that cannot be read (here its
    table is gone) is named in the report's `unrecovered`, not a failed restore."""
    run(migrate(postgres_url))
    run(_seed(redis_url))
    cfg = _config(tmp_path, redis_url, postgres_url)
    _archive(redis_url, postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE settlement_journal")
    sync_client(redis_url).flushall()
    code, out = _restore(cfg, capsys)
    assert code == 0 and out["audit"]["ok"], out
    assert out["recovered"] == 0 and len(out["unrecovered"]) == 1
    assert "settlement journal could not be read" in out["unrecovered"][0]
    # The text output says so too.
    capsys.readouterr()
    assert main(["restore", "--config", cfg, "--force"]) == 0
    text = capsys.readouterr().out
    assert "settlement journal: 0 row(s) read, 0 charge(s)" in text
    assert "NOT recovered the settlement journal could not be read" in text


def test_the_archiver_prunes_journal_rows_no_restore_can_need(
    redis_url: str, postgres_url: str
) -> None:
    """The journal gets a row per settled request; the archiver deletes those received more
    than `journal_keep_ms` before the archived high-water entry (a restore reads from that
    entry's time minus `journal_lookback_ms`, less than the keep), none newer, no other org's,
    and at most once per prune interval."""
    ttl_ms = 600_000
    keep = journal_keep_ms(ttl_ms)
    assert keep > journal_lookback_ms(ttl_ms)
    run(migrate(postgres_url))
    run(_seed(redis_url))
    high_ms = split_id(sync_client(redis_url).xrevrange(Keys(ORG).ledger, count=1)[0][0])[0]
    journal = PostgresJournal(postgres_url)
    old, needed, later = "r_prune_old", "r_prune_needed", "r_prune_later"

    async def go() -> None:
        await journal.record(ORG, [charge(old, 1, received_ms=high_ms - keep - 1_000)])
        await journal.record(ORG, [charge(needed, 1, received_ms=high_ms - keep + 1_000)])
        await journal.record("other-org", [charge(old, 1, received_ms=high_ms - keep - 1_000)])
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        arch = Archiver(
            client, ArchiveStore(postgres_url), ORG, tail_entries=1000, journal_keep_ms=keep
        )
        first = await arch.run_once()
        assert first.acted and first.pruned >= 1
        await journal.record(ORG, [charge(later, 1, received_ms=1)])
        assert (await arch.run_once()).pruned == 0  # not again within the interval
        ids = {c.reservation_id for c in await journal.since(ORG, 0)}
        assert old not in ids and needed in ids and later in ids
        assert old in {c.reservation_id for c in await journal.since("other-org", 0)}
        await journal.close()
        await client.aclose()

    run(go())
