"""Store loss under load through the real Envoy and the real service with PostgreSQL archiving,
then `keeptrusts-authz restore`:

- `empty`: Redis without persistence killed -9 and restarted empty;
- `stale`: Redis killed -9 and restarted from an RDB snapshot taken ~1.3 s earlier (it serves on
  its stale books until the continuity check notices).

Both: Checks answer 503 store_regressed, the audit fails naming the gap, restore rebuilds the
books from PostgreSQL and books from the settlement journal the charges whose entries died with
Redis, the audit passes and serving resumes. Every served request is charged exactly once at its
cost (no estimate, no double charge, none lost: `lost == 0`); the test prints how many charges
came back from the journal (restore's report and the `recovered` settles in the ledger).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.ledger.archive_store import ArchiveStore, split_id
from keeptrusts_authz.ledger.schema import migrate
from testing.load import HttpLoad
from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.e2e.test_sentinel_failover_e2e import (  # the same request, team and wait as there
    BODY,
    CHAT,
    KEY,
    TEAM,
    USD,
    _wait,
    provider,  # noqa: F401  (its fake provider fixture)
)
from tests.fake_provider import FakeProvider
from tests.wallets.support import run

pytestmark = pytest.mark.envoy

ARCHIVE_INTERVAL = 0.2


def run_in_thread(coro):  # type: ignore[no-untyped-def]
    """asyncio.run from inside a callback that may already run under stack.wallets' loop."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run, coro).result()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.mark.parametrize("loss", ["empty", "stale"])
def test_store_loss_under_load_then_restore(
    loss: str,
    provider: FakeProvider,  # noqa: F811
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(migrate(postgres_url))
    with RedisServer() as rs:
        cfg = stack_config(
            rs.url,
            provider.url,
            ledger={
                "postgres_url": postgres_url,
                "redis_tail_entries": 200,
                "archive_interval_seconds": ARCHIVE_INTERVAL,
            },
        )
        with Stack(cfg) as stack:
            conf = str(stack.config_path)
            stack.fund("team_engineering", 1000 * USD)
            status, _, _ = stack.post(CHAT, BODY, key=KEY)
            assert status == 200
            cost = stack.wait_settled(TEAM).spent_total
            assert cost > 0
            provider.clear()
            time.sleep(1.0)  # the first request archived: the archive has history

            load = HttpLoad(stack.url + CHAT, BODY, KEY, rate=30).start()
            try:
                time.sleep(1.2)
                if loss == "stale":
                    rs.save()
                time.sleep(1.3)
                rs.kill()
                killed_at = time.time()
                high_at_kill = run(ArchiveStore(postgres_url).last_archived_id("acme"))
                assert high_at_kill is not None
                rs.start()  # empty, or from the stale dump.rdb
                _wait(
                    lambda: any(s.reason == "store_regressed" for s in load.sent),
                    20,
                    "Checks answering 503 store_regressed",
                )
                time.sleep(1.0)
                code, out = _cli(capsys, "audit", "--config", conf)
                assert code == 1 and "ledger gap" in out, out
                code, out = _cli(capsys, "restore", "--config", conf, "--json")
                assert code == 0, out
                report = json.loads(out)
                assert report["audit"]["ok"], report["audit"]
                restored_at = time.time()
                _wait(lambda: load.count(200, since=restored_at) >= 20, 30, "serving to resume")
            finally:
                load.stop()
            stack.wait_settled(TEAM, timeout=10)
            time.sleep(ARCHIVE_INTERVAL * 3)
            code, out = _cli(capsys, "audit", "--config", conf)
            assert code == 0, out
            wallet = stack.wallet(TEAM)

            def archived_all() -> bool:
                last = stack.wallets(lambda w: w.store.marker())
                high = run_in_thread(ArchiveStore(postgres_url).last_archived_id("acme"))
                return high == last.last_id  # type: ignore[attr-defined]

            _wait(archived_all, 15, "the archiver to catch up")

    served = load.served()
    # Envoy strips every x-keeptrusts-* header before the provider, so served requests are
    # matched by count against the ledger of record (everything is archived by now).
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT op, amount, fields FROM ledger_entries WHERE org = 'acme'"
            " AND op IN ('settle', 'expire', 'correct')"
        ).fetchall()
    settles = [(amount, fields) for op, amount, fields in rows if op == "settle"]
    assert not [r for r in rows if r[0] != "settle"], "an estimate or a correction was booked"
    assert len({f["reservation"] for _, f in settles}) == len(settles), "settled twice"
    assert all(a == cost and f["estimated"] == "0" for a, f in settles)
    exact = len(settles) - 1  # minus the probe request
    lost = len(served) - exact
    # Served after the archived high-water mark at the kill: what died with Redis.
    high_s = split_id(high_at_kill)[0] / 1000
    window = [s for s in served if s.ended >= high_s - 0.5 and s.started <= killed_at + 0.5]
    recovered = [f for _, f in settles if f.get("recovered") == "1"]
    assert lost == 0, (lost, len(window), len(recovered), report.get("recovered"))
    assert all(f["reserved"] == "0" for f in recovered)
    after = [s for s in served if s.started >= restored_at]
    assert len(after) >= 20
    assert wallet.spent_total == cost * len(settles), (wallet, len(settles))
    regressed = [s for s in load.sent if s.reason == "store_regressed"]
    span = max(s.ended for s in regressed) - min(s.started for s in regressed)
    codes: dict[int, int] = {}
    for s in load.sent:
        codes[s.status] = codes.get(s.status, 0) + 1
    print(
        f"\nstore loss ({loss}): sent={len(load.sent)} statuses={codes} served={len(served)} "
        f"charged exactly={exact} lost={lost} (served in the unarchived window={len(window)}; "
        f"recovered from the journal: {len(recovered)} recovered settles, restore booked "
        f"{report.get('recovered')} of {report.get('journal_rows')} journal rows) "
        f"store_regressed 503s={len(regressed)} over {span:.1f}s; restore "
        f"{report['seconds']:.3f}s for {report['wallets']} wallets / {report['entries']} entries "
        f"(open restored {report['open_reservations']}, carried {report['carried']}, "
        f"dropped {len(report['dropped'])})"
    )
