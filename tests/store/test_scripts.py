"""Each Lua script against the real Redis: balances, the ledger entry it appends, idempotency."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from importlib import resources

import pytest
from redis.crc import key_slot

from keeptrusts_authz.errors import Conflict, UnknownWallet
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import SCRIPT_NAMES, load_script_text
from keeptrusts_authz.wallets.models import ReleaseRequest, SettleRequest
from tests.wallets.support import (
    ORG,
    USD,
    funded,
    raw_state,
    reserve_req,
    rid,
    run,
    sync_client,
    wallet_service,
)

LEDGER = f"kt:{{{ORG}}}:ledger"


def last_entry(url: str) -> dict[str, str]:
    client = sync_client(url)
    try:
        rows = client.xrevrange(LEDGER, count=1)
        return dict(rows[0][1])
    finally:
        client.close()


def test_scripts_are_package_files_with_headers() -> None:
    lua_dir = resources.files("keeptrusts_authz.store").joinpath("lua")
    names = sorted(p.name for p in lua_dir.iterdir() if p.name.endswith(".lua"))
    assert {f"{n}.lua" for n in SCRIPT_NAMES} <= set(names)
    for name in SCRIPT_NAMES:
        text = load_script_text(name)
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        assert "KEYS[1]" in header and "ARGV[1]" in header and "Returns" in header, name
        assert "redis.call('TIME')" in text, name
        # The shared helpers come once, from the prelude; each file holds only its own logic.
        own = resources.files("keeptrusts_authz.store").joinpath("lua", f"{name}.lua")
        own_text = own.read_text("utf-8")
        assert text.endswith(own_text) and text.startswith("-- prelude.lua"), name
        assert "redis_now_ms()" in own_text and "redis.call('TIME')" not in own_text, name
        for helper in ("s", "redis_now_ms", "utc_day", "create_wallet", "idem_replay"):
            assert f"local function {helper}(" not in own_text, (name, helper)


def test_every_key_of_an_org_shares_one_slot() -> None:
    k = Keys(ORG)
    keys = [
        k.ledger,
        k.wallets,
        k.deadlines,
        k.wallet("org"),
        k.wallet("team:team_eng"),
        k.wallet("user:bob@example.com"),
        k.reservation("r_0123456789abcdef01234567"),
        k.idem("abc"),
        k.stats("2025-01"),
        k.usage,
        k.burn("2025-01-31"),
    ]
    assert all(key.startswith("kt:{acme}:") for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    with pytest.raises(ValueError):
        Keys("a{b}")


def test_credit_and_its_ledger_entry(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            res = await svc.credit(5000 * USD, "USD", "Q1 budget", "alice")
            assert res.balances == {"org": 5000 * USD} and not res.replayed
            org = await svc.wallet("org")
            assert (org.balance, org.allocated_total, org.reserved, org.spent_total) == (
                5000 * USD,
                5000 * USD,
                0,
                0,
            )

    run(go())
    e = last_entry(redis_url)
    assert e["op"] == "credit" and e["wallet"] == "org" and e["amount"] == str(5000 * USD)
    assert e["actor"] == "alice" and e["description"] == "Q1 budget"
    assert e["balance_after"] == str(5000 * USD) and int(e["ts_ms"]) > 1_600_000_000_000


def test_allocate_reclaim_transfer_entries(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await svc.credit(5000 * USD, "USD", "c", "alice")
            res = await svc.allocate("team:team_eng", 1200 * USD, "USD", "monthly", "alice")
            assert res.balances == {"org": 3800 * USD, "team:team_eng": 1200 * USD}
            e = last_entry(redis_url)
            assert (e["op"], e["from"], e["to"], e["wallet"]) == (
                "allocate",
                "org",
                "team:team_eng",
                "team:team_eng",
            )
            assert e["balance_after"] == str(1200 * USD)

            res = await svc.transfer(
                "team:team_eng", "team:team_support", 200 * USD, "USD", "", "b"
            )
            assert res.balances == {"team:team_eng": 1000 * USD, "team:team_support": 200 * USD}
            e = last_entry(redis_url)
            assert (e["op"], e["from"], e["to"], e["amount"]) == (
                "transfer",
                "team:team_eng",
                "team:team_support",
                str(200 * USD),
            )

            res = await svc.reclaim("team:team_support", 50 * USD, "USD", "back", "carol")
            assert res.balances == {"team:team_support": 150 * USD, "org": 3850 * USD}
            e = last_entry(redis_url)
            assert (e["op"], e["from"], e["to"], e["actor"]) == (
                "reclaim",
                "team:team_support",
                "org",
                "carol",
            )
            eng, sup = await svc.wallet("team:team_eng"), await svc.wallet("team:team_support")
            assert eng.allocated_total == 1000 * USD and sup.allocated_total == 150 * USD
            # users are created on first allocation; unconfigured teams are not
            await svc.allocate("user:bob@example.com", 5 * USD, "USD", "", "alice", team="team_eng")
            with pytest.raises(UnknownWallet):
                await svc.allocate("team:team_ghost", 5 * USD, "USD", "", "alice")
            assert (await svc.audit()).ok

    run(go())


def test_idempotent_admin_moves_replay_and_conflict(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await svc.credit(100 * USD, "USD", "c", "a")
            first = await svc.allocate("team:team_eng", 10 * USD, "USD", "d", "a", "key-1")
            before = raw_state(redis_url)
            again = await svc.allocate("team:team_eng", 10 * USD, "USD", "d", "someone", "key-1")
            assert again.replayed and again.entry_id == first.entry_id
            assert again.balances == first.balances
            assert raw_state(redis_url) == before
            with pytest.raises(Conflict):
                await svc.allocate("team:team_eng", 11 * USD, "USD", "d", "a", "key-1")
            with pytest.raises(Conflict):
                await svc.credit(10 * USD, "USD", "d", "a", "key-1")
            assert raw_state(redis_url) == before
            client = sync_client(redis_url)
            ttl = client.pttl(f"kt:{{{ORG}}}:idem:key-1")
            client.close()
            assert 23 * 3600 * 1000 < ttl <= 24 * 3600 * 1000

    run(go())


def test_reserve_cascade_first_wallet_that_can_pay_all(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=1000 * USD)
            await svc.allocate("user:alice", 50 * USD, "USD", "", "a", team="team_eng")
            cands = ("user:ghost", "user:alice", "team:team_eng")
            # alice can pay 40 -> alice; the missing user wallet is skipped
            r1 = await svc.reserve(reserve_req(40 * USD, cands))
            assert (r1.outcome, r1.wallet, r1.amount) == ("reserved", "user:alice", 40 * USD)
            assert r1.seen == {"user:alice": 50 * USD}
            # alice has 10 left: 100 is never split, the team pays all of it
            r2 = await svc.reserve(reserve_req(100 * USD, cands))
            assert (r2.outcome, r2.wallet) == ("reserved", "team:team_eng")
            assert r2.seen == {"user:alice": 10 * USD, "team:team_eng": 1000 * USD}
            alice, eng = await svc.wallet("user:alice"), await svc.wallet("team:team_eng")
            assert (alice.balance, alice.reserved) == (10 * USD, 40 * USD)
            assert (eng.balance, eng.reserved) == (900 * USD, 100 * USD)
            e = last_entry(redis_url)
            assert e["op"] == "reserve" and e["overdraft"] == "0" and e["wallet"] == "team:team_eng"
            assert e["team"] == "team_eng" and e["user"] == "alice" and e["model"] == "gpt-4o"
            res = await svc.reservation(e["reservation"])
            assert res is not None and res.state == "open" and res.amount == 100 * USD
            client = sync_client(redis_url)
            score = client.zscore(f"kt:{{{ORG}}}:r:deadlines", e["reservation"])
            client.close()
            assert score == res.deadline_ms
            assert (await svc.audit()).ok

    run(go())


@pytest.mark.parametrize(
    ("policy", "outcome", "counter"), [("block", "blocked", "blocked"), ("hold", "hold", "held")]
)
def test_reserve_refusals_write_only_the_counter(
    redis_url: str, policy: str, outcome: str, counter: str
) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            before = raw_state(redis_url)
            for _ in range(3):
                r = await svc.reserve(reserve_req(11 * USD, policy=policy))  # type: ignore[arg-type]
                assert (r.outcome, r.wallet, r.seen) == (outcome, None, {"team:team_eng": 10 * USD})
                assert not r.allowed
            assert raw_state(redis_url) == before
            counters = await svc.store.denial_counters()
            assert counters == {f"team_eng|{counter}": 3}

    run(go())


def test_reserve_warn_and_showback_overdraft(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            r = await svc.reserve(
                reserve_req(
                    25 * USD, ("user:alice", "team:team_eng"), "warn", overdraft="team:team_eng"
                )
            )
            assert (r.outcome, r.wallet) == ("overdraft", "team:team_eng")
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.status) == (-15 * USD, 25 * USD, "depleted")
            e = last_entry(redis_url)
            assert e["op"] == "reserve" and e["overdraft"] == "1"
            # showback without an explicit overdraft wallet: the last candidate, created if missing
            r = await svc.reserve(reserve_req(5 * USD, ("user:zed", "team:team_ops"), "showback"))
            assert (r.outcome, r.wallet) == ("overdraft", "team:team_ops")
            ops = await svc.wallet("team:team_ops")
            assert (ops.balance, ops.reserved) == (-5 * USD, 5 * USD)
            assert (await svc.audit()).ok

    run(go())


def test_duplicate_reservation_id_changes_nothing(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(3 * USD)
            assert (await svc.reserve(req)).outcome == "reserved"
            before = raw_state(redis_url)
            dup = await svc.reserve(req)
            assert (dup.outcome, dup.wallet, dup.amount) == ("duplicate", "team:team_eng", 3 * USD)
            assert raw_state(redis_url) == before

    run(go())


def test_settle_twice_is_settle_once(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(3 * USD)
            await svc.reserve(req)
            s = SettleRequest(
                req.reservation_id, 1_234_567, False, 100, 50, 10, "gpt-4o-2024-08-06"
            )
            first = await svc.settle(s)
            assert (first.outcome, first.wallet, first.reserved, first.cost) == (
                "settled",
                "team:team_eng",
                3 * USD,
                1_234_567,
            )
            e = last_entry(redis_url)
            assert (e["op"], e["reservation"], e["reserved"], e["cost"], e["estimated"]) == (
                "settle",
                req.reservation_id,
                str(3 * USD),
                "1234567",
                "0",
            )
            assert (e["input_tokens"], e["output_tokens"], e["cached_tokens"]) == (
                "100",
                "50",
                "10",
            )
            assert e["model"] == "gpt-4o-2024-08-06"
            before = raw_state(redis_url)
            second = await svc.settle(s)
            assert (second.outcome, second.cost) == ("already_closed", 1_234_567)
            assert (await svc.release(req.reservation_id)).outcome == "already_closed"
            assert raw_state(redis_url) == before
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (
                10 * USD - 1_234_567,
                0,
                1_234_567,
            )
            unknown = await svc.settle(SettleRequest(rid(), 5, False))
            assert unknown.outcome == "unknown"
            assert raw_state(redis_url) == before
            client = sync_client(redis_url)
            ttl = client.pttl(f"kt:{{{ORG}}}:r:{req.reservation_id}")
            indexed = client.zscore(f"kt:{{{ORG}}}:r:deadlines", req.reservation_id)
            client.close()
            # the closed record is kept as long as idempotency needs (default 6 h), then dropped
            assert 5 * 3600 * 1000 < ttl <= 6 * 3600 * 1000 and indexed is None
            assert (await svc.audit()).ok

    run(go())


def test_release_returns_the_hold(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(4 * USD)
            await svc.reserve(req)
            res = await svc.release(req.reservation_id, "provider 503")
            assert (res.outcome, res.reserved, res.cost) == ("released", 4 * USD, 0)
            e = last_entry(redis_url)
            assert (e["op"], e["amount"], e["description"]) == (
                "release",
                str(4 * USD),
                "provider 503",
            )
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (10 * USD, 0, 0)
            assert (await svc.settle(SettleRequest(req.reservation_id, 1, False))).outcome == (
                "already_closed"
            )
            assert (await svc.audit()).ok

    run(go())


def test_expire_settles_overdue_at_estimate(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            due = reserve_req(2 * USD, ttl_ms=1)
            later = reserve_req(3 * USD, ttl_ms=600_000)
            await svc.reserve(due)
            await svc.reserve(later)
            await asyncio.sleep(0.01)
            expired = await svc.expire_due(100)
            assert [(x.reservation_id, x.wallet, x.amount) for x in expired] == [
                (due.reservation_id, "team:team_eng", 2 * USD)
            ]
            e = last_entry(redis_url)
            assert (e["op"], e["estimated"], e["cost"], e["reserved"]) == (
                "expire",
                "1",
                str(2 * USD),
                str(2 * USD),
            )
            assert await svc.expire_due(100) == []
            res = await svc.reservation(due.reservation_id)
            assert res is not None and res.state == "expired" and res.estimated
            # A late estimate changes nothing (a late real cost corrects: test_corrections.py).
            assert (await svc.settle(SettleRequest(due.reservation_id, 1, True))).outcome == (
                "already_closed"
            )
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (5 * USD, 3 * USD, 2 * USD)
            assert (await svc.audit()).ok

    run(go())


def test_expire_racing_settle_exactly_one_wins(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=1000 * USD)
            settled_wins = expired_wins = 0
            for i in range(60):
                req = reserve_req(1 * USD + i, ttl_ms=1)
                await svc.reserve(req)
                await asyncio.sleep(0.002)
                settle = svc.settle(SettleRequest(req.reservation_id, 1000, False))
                sweeps = [svc.expire_due(10) for _ in range(2)]
                if i % 2:
                    s_res, *e_res = await asyncio.gather(settle, *sweeps)
                else:
                    *e_res, s_res = await asyncio.gather(*sweeps, settle)
                expired_here = sum(
                    1 for batch in e_res for x in batch if x.reservation_id == req.reservation_id
                )
                assert (s_res.outcome == "settled") + expired_here == 1
                settled_wins += s_res.outcome == "settled"
                expired_wins += expired_here
                # The real cost arriving after the expiry replaces its estimate.
                assert s_res.outcome == ("corrected" if expired_here else "settled")
            assert settled_wins + expired_wins == 60
            report = await svc.audit()
            assert report.ok, report.mismatches
            closes = [e for e in await svc.ledger(500) if e.op in ("settle", "expire")]
            assert len(closes) == 60

    run(go())


def test_concurrent_sweepers_close_each_reservation_once(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=1000 * USD)
            ids = set()
            for _ in range(200):
                req = reserve_req(1 * USD, ttl_ms=1)
                ids.add(req.reservation_id)
                await svc.reserve(req)
            await asyncio.sleep(0.01)

            async def sweeper() -> list[str]:
                got: list[str] = []
                while batch := await svc.expire_due(7):
                    got += [x.reservation_id for x in batch]
                return got

            results = await asyncio.gather(*(sweeper() for _ in range(5)))
            all_ids = [r for batch in results for r in batch]
            assert len(all_ids) == 200 and set(all_ids) == ids
            eng = await svc.wallet("team:team_eng")
            assert (eng.reserved, eng.spent_total, eng.balance) == (0, 200 * USD, 800 * USD)
            assert (await svc.audit()).ok

    run(go())


@dataclass(frozen=True)
class GatewayRelease:
    """Shaped like the gateway's own Release type: settle_batch takes anything with these."""

    reservation_id: str
    reason: str


def test_settle_batch_in_one_pipeline(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=100 * USD)
            reqs = [reserve_req(1 * USD) for _ in range(6)]
            for r in reqs:
                await svc.reserve(r)
            items = [
                SettleRequest(reqs[0].reservation_id, 500_000, False),
                ReleaseRequest(reqs[1].reservation_id, "client went away"),
                GatewayRelease(reqs[2].reservation_id, "503"),
                SettleRequest(reqs[3].reservation_id, 1 * USD, True),
                SettleRequest(reqs[0].reservation_id, 500_000, False),  # repeated in the batch
                SettleRequest(rid(), 1, False),  # unknown
                SettleRequest("bad id!", 1, False),  # invalid: never sent
            ]
            out = await svc.settle_batch(items)
            assert [r.outcome for r in out] == [
                "settled",
                "released",
                "released",
                "settled",
                "already_closed",
                "unknown",
                "unknown",
            ]
            eng = await svc.wallet("team:team_eng")
            assert eng.reserved == 2 * USD and eng.spent_total == 1_500_000
            assert await svc.settle_batch([]) == []
            assert (await svc.audit()).ok

    run(go())


def test_scripts_reload_after_script_flush(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await svc.credit(1 * USD, "USD", "", "a")
            client = sync_client(redis_url)
            client.script_flush()
            client.close()
            await svc.credit(1 * USD, "USD", "", "a")
            await svc.reserve(reserve_req(1, ("org",)))
            assert (await svc.wallet("org")).balance == 2 * USD - 1

    run(go())


def test_ledger_entries_never_hold_secrets(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            await svc.reserve(reserve_req(1 * USD))
            for e in await svc.ledger(100):
                assert not any(re.search(r"kt_cg_|kt:\{", v) for v in e.fields.values())

    run(go())


def test_zero_amount_reservation_lifecycle(redis_url: str) -> None:
    """A free model reserves 0: Lua's -0 must never reach HINCRBY as "-0"."""

    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=1 * USD)
            a, b, c = reserve_req(0), reserve_req(0), reserve_req(0, ttl_ms=1)
            for req in (a, b, c):
                assert (await svc.reserve(req)).outcome == "reserved"
            assert (
                await svc.settle(SettleRequest(a.reservation_id, 0, False))
            ).outcome == "settled"
            assert (await svc.release(b.reservation_id)).outcome == "released"
            await asyncio.sleep(0.01)
            assert [x.reservation_id for x in await svc.expire_due(10)] == [c.reservation_id]
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (1 * USD, 0, 0)
            assert (await svc.audit()).ok

    run(go())


def test_closed_reservation_records_live_the_configured_ttl(redis_url: str) -> None:
    """Closed hashes and tombstones stay as long as idempotency needs (default 6 h), then go."""
    from keeptrusts_authz.store.redis_store import RedisWalletStore
    from keeptrusts_authz.wallets.service import WalletService
    from tests.wallets.support import make_config

    async def go() -> None:
        cfg = make_config(redis_url)
        default = RedisWalletStore.from_settings(cfg.redis, ORG)
        short = RedisWalletStore(default._client, ORG, closed_ttl_seconds=120)
        try:
            for store, ttl_s in ((default, 6 * 3600), (short, 120)):
                svc = WalletService(store, cfg)
                await funded(svc, team_eng=10 * USD)
                settled, released, late = rid(), rid(), rid()
                await svc.reserve(reserve_req(1 * USD, reservation_id=settled))
                await svc.reserve(reserve_req(1 * USD, reservation_id=released))
                await svc.settle(SettleRequest(settled, 5, False))
                await svc.release(released)
                await svc.release(late)  # tombstone: released before it was reserved
                expired = rid()
                await svc.reserve(reserve_req(1 * USD, reservation_id=expired, ttl_ms=1))
                await asyncio.sleep(0.01)
                assert [e.reservation_id for e in await svc.expire_due()] == [expired]
                client = sync_client(redis_url)
                for r in (settled, released, late, expired):
                    ttl = client.pttl(Keys(ORG).reservation(r))
                    assert (ttl_s - 5) * 1000 < ttl <= ttl_s * 1000, (r, ttl)
                client.close()
        finally:
            await default.close()

    run(go())
