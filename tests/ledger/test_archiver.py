"""The archiver against real Redis and real PostgreSQL: stream order, idempotency, the trim
keeps the configured tail and never an unarchived entry, and only one archiver acts at a time."""

from __future__ import annotations

import asyncio

import psycopg
import redis.asyncio as aredis

from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.archiver import Archiver, _entry, archive_lock_key
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.models import LedgerEntry
from tests.wallets.support import ORG, USD, funded, reserve_req, run, sync_client, wallet_service


async def _seed(redis_url: str, allocations: int) -> None:
    async with wallet_service(redis_url) as svc:
        await funded(svc, team_eng=100 * USD)
        for _ in range(allocations):
            await svc.allocate("team:team_support", 1 * USD, "USD", "", "t")
        await svc.reserve(reserve_req(2 * USD))


def _redis_ids(redis_url: str) -> list[str]:
    return [i for i, _ in sync_client(redis_url).xrange(Keys(ORG).ledger)]


def _archived(pg_url: str) -> list[tuple[str, str, int, dict[str, str]]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id_ms || '-' || id_seq, op, amount, fields FROM ledger_entries"
            " WHERE org = %s ORDER BY id_ms, id_seq",
            (ORG,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def _archiver(redis_url: str, pg_url: str, tail: int, batch: int = 5_000) -> Archiver:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    return Archiver(client, ArchiveStore(pg_url), ORG, tail_entries=tail, batch=batch)


def test_archives_every_entry_in_order_with_all_fields(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url, 7))
    before = sync_client(redis_url).xrange(Keys(ORG).ledger)

    async def go() -> None:
        arch = await _archiver(redis_url, postgres_url, tail=1000, batch=3)
        res = await arch.run_once()
        assert res.acted and res.archived == len(before) and res.trimmed == 0
        assert res.high_water == before[-1][0]
        assert await ArchiveStore(postgres_url).last_archived_id(ORG) == before[-1][0]

    run(go())
    got = _archived(postgres_url)
    assert [g[0] for g in got] == [i for i, _ in before]
    for (_gid, op, amount, fields), (_, raw) in zip(got, before, strict=True):
        assert fields == raw and op == raw["op"] and amount == int(raw.get("amount") or 0)


def test_rerun_and_overlap_archive_nothing_twice(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url, 3))
    n = len(_redis_ids(redis_url))

    async def go() -> None:
        arch = await _archiver(redis_url, postgres_url, tail=1000)
        assert (await arch.run_once()).archived == n
        assert (await arch.run_once()).archived == 0
        # An entry already archived offered again (a pass that died after its commit) is skipped.
        async with await ArchiveStore(postgres_url).connect() as conn:
            assert await ArchiveStore.insert(conn, ORG, _entries_from_redis(redis_url)) == 0
        async with wallet_service(redis_url) as svc:
            await svc.allocate("team:team_support", 1 * USD, "USD", "", "t")
        assert (await arch.run_once()).archived == 1

    run(go())
    assert len(_archived(postgres_url)) == n + 1
    assert [g[0] for g in _archived(postgres_url)] == _redis_ids(redis_url)


def _entries_from_redis(redis_url: str) -> list[LedgerEntry]:
    return [_entry(i, f) for i, f in sync_client(redis_url).xrange(Keys(ORG).ledger)]


def test_trim_keeps_the_tail_and_never_unarchived_entries(
    redis_url: str, postgres_url: str
) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url, 10))
    ids = _redis_ids(redis_url)

    async def go() -> None:
        arch = await _archiver(redis_url, postgres_url, tail=4)
        res = await arch.run_once()
        assert res.trimmed == len(ids) - 4
        assert _redis_ids(redis_url) == ids[-4:]
        # New entries arrive: they stay until archived, then the tail moves on.
        async with wallet_service(redis_url) as svc:
            for _ in range(3):
                await svc.allocate("team:team_support", 1 * USD, "USD", "", "t")
        assert len(_redis_ids(redis_url)) == 7
        assert (await arch.run_once()).archived == 3
        assert len(_redis_ids(redis_url)) == 4
        zero = await _archiver(redis_url, postgres_url, tail=0)
        assert (await zero.run_once()).trimmed == 4
        assert _redis_ids(redis_url) == []

    run(go())
    assert len(_archived(postgres_url)) == len(ids) + 3


def test_only_one_archiver_acts_at_a_time(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url, 2))

    async def go() -> None:
        a = await _archiver(redis_url, postgres_url, tail=1000)
        # Another replica holds the org's archive lock: this one stands aside.
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as other:
            await other.execute("SELECT pg_advisory_lock(%s)", (archive_lock_key(ORG),))
            res = await a.run_once()
            assert not res.acted and res.archived == 0
        b = await _archiver(redis_url, postgres_url, tail=1000)
        results = await asyncio.gather(*(x.run_once() for x in (a, b, a, b)))
        assert sum(r.archived for r in results) == len(_redis_ids(redis_url))

    run(go())
    assert [g[0] for g in _archived(postgres_url)] == _redis_ids(redis_url)
