"""History read from PostgreSQL merged with the Redis tail (real Redis + real PostgreSQL): after
archiving and trimming Redis to a 3-entry tail, the ledger listing (every page, with and without
a wallet filter), the transactions pagination and the chargeback report (CSV and FOCUS) are what
they were before the trim, to the micro; Redis alone would have lost them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.reports.render import chargeback_report
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.history import MergedHistory
from keeptrusts_authz.wallets.service import WalletService
from tests.ledger.test_restore import _archive, _config, _seed, _traffic
from tests.wallets.support import ORG, make_config, run, sync_client

MONTH = datetime.now(UTC).strftime("%Y-%m")


async def _pages(svc: WalletService, size: int, wallet: str | None = None) -> list[list[str]]:
    pages: list[list[str]] = []
    before = None
    while True:
        page = await svc.ledger(size, before=before, wallet=wallet)
        if not page:
            return pages
        pages.append(
            [f"{e.id}|{e.op}|{e.wallet}|{e.amount}|{sorted(e.fields.items())}" for e in page]
        )
        before = page[-1].id


async def _views(redis_url: str, pg_url: str | None) -> dict[str, object]:
    cfg = make_config(redis_url)
    store = RedisWalletStore.from_settings(cfg.redis, ORG)
    svc = WalletService(store, cfg, archive=ArchiveStore(pg_url) if pg_url else None)
    try:
        return {
            "all": await _pages(svc, 7),
            "eng": await _pages(svc, 4, wallet="team:team_eng"),
            "org": await _pages(svc, 5, wallet="org"),
            "csv": await chargeback_report(svc, MONTH, "csv", "team"),
            "focus": await chargeback_report(svc, MONTH, "focus", "team"),
        }
    finally:
        await store.close()


def test_listings_and_reports_after_trim_equal_before(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url))
    run(_traffic(redis_url, 8, open_left=2))
    before = run(_views(redis_url, None))
    total = sync_client(redis_url).xlen(Keys(ORG).ledger)
    assert sum(len(p) for p in before["all"]) == total > 20  # type: ignore[arg-type]

    _archive(redis_url, postgres_url, tail=3)
    assert sync_client(redis_url).xlen(Keys(ORG).ledger) == 3
    run(_traffic(redis_url, 1, open_left=0))  # a few unarchived entries in the tail too
    grown = run(_views(redis_url, None))  # (Redis only: the trimmed history is gone)
    assert sum(len(p) for p in grown["all"]) < total  # type: ignore[arg-type]

    merged = run(_views(redis_url, postgres_url))
    flat_before = [x for p in before["all"] for x in p]  # type: ignore[attr-defined]
    flat_after = [x for p in merged["all"] for x in p]  # type: ignore[attr-defined]
    ids = [x.split("|", 1)[0] for x in flat_after]
    assert len(ids) == len(set(ids))  # no duplicates
    assert ids == sorted(ids, key=_key, reverse=True)  # ordered by stream id
    # Older than the new traffic: exactly what the listing showed before the trim.
    newest_before = _key(flat_before[0].split("|", 1)[0])
    assert [x for x in flat_after if _key(x.split("|", 1)[0]) <= newest_before] == flat_before
    assert len(flat_after) > len(flat_before)


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def test_merged_history_equals_the_untrimmed_history(redis_url: str, postgres_url: str) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url))
    run(_traffic(redis_url, 6, open_left=1))
    before = run(_views(redis_url, None))
    _archive(redis_url, postgres_url, tail=3)
    after = run(_views(redis_url, postgres_url))
    assert after == before
    redis_only = run(_views(redis_url, None))
    assert redis_only["all"] != before["all"] and redis_only["csv"] != before["csv"]

    async def iterate() -> list[str]:
        cfg = make_config(redis_url)
        store = RedisWalletStore.from_settings(cfg.redis, ORG)
        try:
            return [
                e.id async for e in MergedHistory(store, ArchiveStore(postgres_url)).iter_ledger()
            ]
        finally:
            await store.close()

    ids = run(iterate())
    assert ids == [x.split("|", 1)[0] for p in reversed(before["all"]) for x in reversed(p)]  # type: ignore[arg-type]


def test_cli_ledger_reads_postgres_after_the_trim(
    redis_url: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(migrate(postgres_url))
    run(_seed(redis_url))
    run(_traffic(redis_url, 4, open_left=1))
    cfg = _config(tmp_path, redis_url, postgres_url, tail=3)

    def listing(*extra: str) -> str:
        capsys.readouterr()
        assert main(["ledger", "--limit", "500", "--json", "--config", cfg, *extra]) == 0
        return capsys.readouterr().out

    before, before_eng = listing(), listing("--wallet", "team:team_eng")
    _archive(redis_url, postgres_url, tail=3)
    assert sync_client(redis_url).xlen(Keys(ORG).ledger) == 3
    assert listing() == before and listing("--wallet", "team:team_eng") == before_eng
